package org.example.workflow.edc.common;

import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.junit.jupiter.api.Test;

import java.net.InetSocketAddress;
import java.nio.channels.ServerSocketChannel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BindHostTest {

    @Test
    void connectorListensOnTheConfiguredAddressOnly() throws Exception {
        var server = new Server();
        var connector = new ServerConnector(server);
        connector.setPort(0);
        new BindHost("127.0.0.1").accept(connector);
        server.addConnector(connector);
        server.start();
        try {
            var channel = (ServerSocketChannel) connector.getTransport();
            var bound = (InetSocketAddress) channel.getLocalAddress();
            assertEquals("127.0.0.1", bound.getAddress().getHostAddress());
            assertTrue(bound.getAddress().isLoopbackAddress());
            assertEquals("127.0.0.1", connector.getHost());
        } finally {
            server.stop();
        }
    }

    @Test
    void withoutTheCallbackJettyListensOnTheWildcardAddress() throws Exception {
        var server = new Server();
        var connector = new ServerConnector(server);
        connector.setPort(0);
        server.addConnector(connector);
        server.start();
        try {
            var bound = (InetSocketAddress) ((ServerSocketChannel) connector.getTransport()).getLocalAddress();
            assertTrue(bound.getAddress().isAnyLocalAddress());
        } finally {
            server.stop();
        }
    }
}

package org.example.workflow.edc.common;

import org.eclipse.jetty.server.ServerConnector;

import java.util.function.Consumer;

/** Sets the listening host of a Jetty connector (applied to each web context's connector before Jetty starts). */
public record BindHost(String host) implements Consumer<ServerConnector> {

    @Override
    public void accept(ServerConnector connector) {
        connector.setHost(host);
    }
}

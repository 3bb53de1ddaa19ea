package org.example.workflow.edc.common;

import org.eclipse.edc.runtime.metamodel.annotation.Extension;
import org.eclipse.edc.runtime.metamodel.annotation.Inject;
import org.eclipse.edc.runtime.metamodel.annotation.Setting;
import org.eclipse.edc.spi.system.ServiceExtension;
import org.eclipse.edc.spi.system.ServiceExtensionContext;
import org.eclipse.edc.web.jetty.JettyService;

/**
 * Binds every web context of the connector to one host address. EDC's Jetty listens on all
 * interfaces and has no setting for that; with {@code workflow.web.http.host=127.0.0.1} a
 * connector that only talks to processes on the same machine is not reachable from outside.
 */
@Extension(BindHostExtension.NAME)
public class BindHostExtension implements ServiceExtension {

    public static final String NAME = "Workflow: bind the web contexts to one host";
    public static final String HOST_SETTING = "workflow.web.http.host";

    @Setting(key = HOST_SETTING, description = "Address every web context listens on (default: all interfaces)", required = false)
    private String host;

    @Inject
    private JettyService jettyService;

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public void initialize(ServiceExtensionContext context) {
        if (host != null && !host.isBlank()) {
            jettyService.addConnectorConfigurationCallback(new BindHost(host.strip()));
            context.getMonitor().info("Web contexts bind to " + host.strip());
        }
    }
}

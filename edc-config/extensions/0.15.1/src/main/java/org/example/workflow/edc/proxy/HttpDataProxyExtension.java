package org.example.workflow.edc.proxy;

import org.eclipse.edc.connector.dataplane.spi.Endpoint;
import org.eclipse.edc.connector.dataplane.spi.iam.DataPlaneAuthorizationService;
import org.eclipse.edc.connector.dataplane.spi.iam.PublicEndpointGeneratorService;
import org.eclipse.edc.http.spi.EdcHttpClient;
import org.eclipse.edc.runtime.metamodel.annotation.Configuration;
import org.eclipse.edc.runtime.metamodel.annotation.Extension;
import org.eclipse.edc.runtime.metamodel.annotation.Inject;
import org.eclipse.edc.runtime.metamodel.annotation.Setting;
import org.eclipse.edc.runtime.metamodel.annotation.Settings;
import org.eclipse.edc.spi.system.Hostname;
import org.eclipse.edc.spi.system.ServiceExtension;
import org.eclipse.edc.spi.system.ServiceExtensionContext;
import org.eclipse.edc.web.spi.WebService;
import org.eclipse.edc.web.spi.configuration.PortMapping;
import org.eclipse.edc.web.spi.configuration.PortMappingRegistry;

/**
 * HTTP-PULL of {@code HttpData} sources on EDC 0.15 (the public data plane API was removed in 0.15.0): a
 * {@code public} web context with {@link HttpDataProxyController}, and the endpoint generator that makes the data
 * plane put that context's URL into the consumer's EDR. Without the generator the data plane refuses to start the
 * flow ("No Endpoint generator function registered for transfer type destination 'HttpData'").
 */
@Extension(HttpDataProxyExtension.NAME)
public class HttpDataProxyExtension implements ServiceExtension {

    public static final String NAME = "Workflow: HTTP-PULL proxy of HttpData sources";
    public static final String CONTEXT = "public";
    static final String HTTP_DATA = "HttpData";

    @Configuration
    private PublicApiConfiguration apiConfiguration;
    @Setting(key = "workflow.proxy.public.endpoint", description = "The public context's URL as consumers reach it (default: http://<edc.hostname>:<port><path>)", required = false)
    private String publicEndpoint;

    @Inject
    private PortMappingRegistry portMappings;
    @Inject
    private WebService webService;
    @Inject
    private DataPlaneAuthorizationService authorization;
    @Inject
    private PublicEndpointGeneratorService endpointGenerator;
    @Inject
    private EdcHttpClient httpClient;
    @Inject
    private Hostname hostname;

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public void initialize(ServiceExtensionContext context) {
        portMappings.register(new PortMapping(CONTEXT, apiConfiguration.port(), apiConfiguration.path()));
        var endpoint = publicEndpoint != null && !publicEndpoint.isBlank() ? publicEndpoint.strip()
                : "http://%s:%d%s".formatted(hostname.get(), apiConfiguration.port(), apiConfiguration.path());
        register(endpointGenerator, endpoint);
        webService.registerResource(CONTEXT, new HttpDataProxyController(authorization, httpClient, context.getMonitor()));
    }

    /** Every HTTP-PULL EDR of an HttpData source points at the proxy, never at the source itself. */
    static void register(PublicEndpointGeneratorService generator, String endpoint) {
        generator.addGeneratorFunction(HTTP_DATA, source -> Endpoint.url(endpoint));
    }

    @Settings
    record PublicApiConfiguration(
            @Setting(key = "web.http.public.port", description = "Port of the public (HTTP-PULL proxy) context", defaultValue = "8185")
            int port,
            @Setting(key = "web.http.public.path", description = "Path of the public (HTTP-PULL proxy) context", defaultValue = "/public")
            String path
    ) {
    }
}

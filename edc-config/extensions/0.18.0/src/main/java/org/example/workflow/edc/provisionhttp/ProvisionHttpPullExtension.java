package org.example.workflow.edc.provisionhttp;

import org.eclipse.edc.connector.dataplane.spi.Endpoint;
import org.eclipse.edc.connector.dataplane.spi.edr.EndpointDataReferenceService;
import org.eclipse.edc.connector.dataplane.spi.edr.EndpointDataReferenceServiceRegistry;
import org.eclipse.edc.connector.dataplane.spi.iam.DataPlaneAuthorizationService;
import org.eclipse.edc.connector.dataplane.spi.iam.PublicEndpointGeneratorService;
import org.eclipse.edc.runtime.metamodel.annotation.Extension;
import org.eclipse.edc.runtime.metamodel.annotation.Inject;
import org.eclipse.edc.spi.EdcException;
import org.eclipse.edc.spi.system.ServiceExtension;
import org.eclipse.edc.spi.system.ServiceExtensionContext;
import org.eclipse.edc.spi.types.domain.DataAddress;

import static org.eclipse.edc.spi.constants.CoreConstants.EDC_NAMESPACE;

/**
 * HTTP-PULL transfers of assets whose data address type is {@code ProvisionHttp} (EDC 0.18.0).
 * <p>
 * Once such a flow is provisioned the data plane creates its EDR with the EDR service registered for the
 * <em>source</em> type ({@code ProvisionHttp}), but revokes it, on terminate, with the one of the <em>destination</em>
 * type ({@code HttpData}: the data plane's {@link DataPlaneAuthorizationService}). Without a service for
 * {@code ProvisionHttp} the flow stays in PROVISION_NOTIFYING and a terminate never reaches the provisioner. So the
 * same authorization service is registered for {@code ProvisionHttp}, and the endpoint generator it needs for
 * {@code HttpData} destinations gets a function. The consumer's EDR is the address the provisioner sent in its
 * callback (EDC 0.16+ hands that on in the DSP start message); the data plane's own token, minted here, is only
 * what its terminate revokes.
 */
@Extension(ProvisionHttpPullExtension.NAME)
public class ProvisionHttpPullExtension implements ServiceExtension {

    public static final String NAME = "Workflow: HTTP-PULL of ProvisionHttp assets";
    public static final String PROVISION_HTTP = "ProvisionHttp";
    public static final String HTTP_DATA = "HttpData";
    /** What an EDR of a source the provisioner did not make points at: nothing (never the source's own URL). */
    public static final String NO_PUBLIC_ENDPOINT = "urn:workflow-middle-layer:no-public-endpoint";

    @Inject
    private EndpointDataReferenceServiceRegistry edrServices;
    @Inject
    private DataPlaneAuthorizationService authorization;
    @Inject
    private PublicEndpointGeneratorService endpointGenerator;

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public void initialize(ServiceExtensionContext context) {
        register(edrServices, authorization, endpointGenerator);
    }

    static void register(EndpointDataReferenceServiceRegistry edrServices, DataPlaneAuthorizationService authorization,
                         PublicEndpointGeneratorService endpointGenerator) {
        if (!(authorization instanceof EndpointDataReferenceService edrService)) {
            throw new EdcException("the data plane's authorization service does not create EDRs: " + authorization.getClass());
        }
        edrServices.register(PROVISION_HTTP, edrService);
        endpointGenerator.addGeneratorFunction(HTTP_DATA, ProvisionHttpPullExtension::endpointOf);
    }

    /** The provisioned address's {@code endpoint} (the consumer's workflow-api). */
    static Endpoint endpointOf(DataAddress source) {
        var endpoint = source.getStringProperty(EDC_NAMESPACE + "endpoint");
        return Endpoint.url(endpoint != null ? endpoint : NO_PUBLIC_ENDPOINT);
    }
}

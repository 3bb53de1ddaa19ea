package org.example.workflow.edc.provisionhttp;

import org.eclipse.edc.connector.dataplane.spi.edr.EndpointDataReferenceServiceRegistry;
import org.eclipse.edc.runtime.metamodel.annotation.Extension;
import org.eclipse.edc.runtime.metamodel.annotation.Inject;
import org.eclipse.edc.spi.system.ServiceExtension;
import org.eclipse.edc.spi.system.ServiceExtensionContext;

import static org.example.workflow.edc.provisionhttp.ProvisionedAddressEdrService.PROVISION_HTTP;

/**
 * HTTP-PULL transfers of assets whose data address type is {@code ProvisionHttp}: without an EDR service for that
 * type the data plane cannot start such a flow once it is provisioned ("No EDR service with type ProvisionHttp
 * found"), the flow stays in PROVISION_NOTIFYING and a later terminate never reaches the provisioner.
 */
@Extension(ProvisionHttpPullExtension.NAME)
public class ProvisionHttpPullExtension implements ServiceExtension {

    public static final String NAME = "Workflow: HTTP-PULL of ProvisionHttp assets";

    @Inject
    private EndpointDataReferenceServiceRegistry edrServices;

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public void initialize(ServiceExtensionContext context) {
        edrServices.register(PROVISION_HTTP, new ProvisionedAddressEdrService());
    }
}

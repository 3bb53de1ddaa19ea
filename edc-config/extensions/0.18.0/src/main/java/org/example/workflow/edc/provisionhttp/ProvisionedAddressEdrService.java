package org.example.workflow.edc.provisionhttp;

import org.eclipse.edc.connector.dataplane.spi.DataFlow;
import org.eclipse.edc.connector.dataplane.spi.edr.EndpointDataReferenceService;
import org.eclipse.edc.spi.result.Result;
import org.eclipse.edc.spi.result.ServiceResult;
import org.eclipse.edc.spi.types.domain.DataAddress;

/**
 * The EDR of an HTTP-PULL flow whose source was provisioned by {@code data-plane-provision-http}: the data
 * address the provisioner sent in its callback, handed to the consumer as it is (for the workflow provisioner:
 * the consumer's own workflow-api endpoint and its bearer token). No token of the data plane is minted, so there
 * is nothing to revoke: access ends when the provisioner, asked to deprovision, revokes its own token.
 */
public class ProvisionedAddressEdrService implements EndpointDataReferenceService {

    public static final String PROVISION_HTTP = "ProvisionHttp";

    @Override
    public Result<DataAddress> createEndpointDataReference(DataFlow dataFlow) {
        var address = dataFlow.getActualSource();
        if (address == null || PROVISION_HTTP.equals(address.getType())) {
            return Result.failure("data flow %s: the provisioner has not sent a data address".formatted(dataFlow.getId()));
        }
        return Result.success(address);
    }

    @Override
    public ServiceResult<Void> revokeEndpointDataReference(String flowId, String reason) {
        return ServiceResult.success();
    }
}

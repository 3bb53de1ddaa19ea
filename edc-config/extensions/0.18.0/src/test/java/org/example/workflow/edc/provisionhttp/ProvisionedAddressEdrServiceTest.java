package org.example.workflow.edc.provisionhttp;

import org.eclipse.edc.connector.dataplane.spi.DataFlow;
import org.eclipse.edc.connector.dataplane.spi.provision.ProvisionResource;
import org.eclipse.edc.connector.dataplane.spi.provision.ProvisionedResource;
import org.eclipse.edc.spi.types.domain.DataAddress;
import org.eclipse.edc.spi.types.domain.transfer.FlowType;
import org.eclipse.edc.spi.types.domain.transfer.TransferType;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ProvisionedAddressEdrServiceTest {

    private static final String EDC = "https://w3id.org/edc/v0.0.1/ns/";
    private static final String HTTP = "https://w3id.org/idsa/v4.1/HTTP";

    private final ProvisionedAddressEdrService service = new ProvisionedAddressEdrService();

    private static DataFlow flowWithProvisionHttpSource() {
        var source = DataAddress.Builder.newInstance().type("ProvisionHttp")
                .property(EDC + "baseUrl", "http://127.0.0.1:8000/edc/dataplane/provision?asset=echo").build();
        var flow = DataFlow.Builder.newInstance().id("flow-1").source(source)
                .transferType(new TransferType("HttpData", FlowType.PULL)).build();
        flow.addResourceDefinitions(List.of(ProvisionResource.Builder.newInstance().id("resource-1").flowId("flow-1")
                .type("ProvisionHttp").dataAddress(source).build()));
        return flow;
    }

    @Test
    void theEdrIsTheAddressTheProvisionerSent() {
        var flow = flowWithProvisionHttpSource();
        var provisioned = DataAddress.Builder.newInstance().type(HTTP)
                .property(EDC + "endpoint", "http://127.0.0.1:9000/consumers/c1")
                .property(EDC + "authorization", "the-provisioners-token").build();
        flow.resourceProvisioned(List.of(ProvisionedResource.Builder.newInstance().id("resource-1").flowId("flow-1")
                .dataAddress(provisioned).build()));

        var edr = service.createEndpointDataReference(flow);

        assertTrue(edr.succeeded(), () -> edr.getFailureDetail());
        assertEquals(HTTP, edr.getContent().getType());
        assertEquals("http://127.0.0.1:9000/consumers/c1", edr.getContent().getStringProperty(EDC + "endpoint"));
        assertEquals("the-provisioners-token", edr.getContent().getStringProperty(EDC + "authorization"));
    }

    @Test
    void noEdrBeforeTheProvisionerAnswered() {
        var edr = service.createEndpointDataReference(flowWithProvisionHttpSource());

        assertTrue(edr.failed());
        assertTrue(edr.getFailureDetail().contains("flow-1"));
    }

    @Test
    void revokingSucceedsSoThatTerminateGoesOnToDeprovisioning() {
        assertTrue(service.revokeEndpointDataReference("flow-1", "terminated").succeeded());
    }
}

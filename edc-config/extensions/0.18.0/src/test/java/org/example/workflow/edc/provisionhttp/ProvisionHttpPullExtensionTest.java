package org.example.workflow.edc.provisionhttp;

import org.eclipse.edc.connector.dataplane.spi.DataFlow;
import org.eclipse.edc.connector.dataplane.spi.edr.EndpointDataReferenceService;
import org.eclipse.edc.connector.dataplane.spi.edr.EndpointDataReferenceServiceRegistry;
import org.eclipse.edc.spi.result.ServiceResult;
import org.eclipse.edc.spi.types.domain.DataAddress;
import org.junit.jupiter.api.Test;

import java.lang.reflect.Field;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

class ProvisionHttpPullExtensionTest {

    /** Records registrations, as the data plane's registry keys them. */
    static class RecordingRegistry implements EndpointDataReferenceServiceRegistry {
        final Map<String, EndpointDataReferenceService> services = new HashMap<>();

        @Override
        public void register(String addressType, EndpointDataReferenceService edrService) {
            services.put(addressType, edrService);
        }

        @Override
        public void registerResponseChannel(String addressType, EndpointDataReferenceService edrService) {
            throw new AssertionError("no response channel is registered");
        }

        @Override
        public ServiceResult<DataAddress> create(DataFlow dataFlow, DataAddress address) {
            throw new AssertionError("not used");
        }

        @Override
        public ServiceResult<DataAddress> createResponseChannel(DataFlow dataFlow, DataAddress address) {
            throw new AssertionError("not used");
        }

        @Override
        public ServiceResult<Void> revoke(DataFlow dataFlow, String reason) {
            throw new AssertionError("not used");
        }

        @Override
        public Set<String> supportedDestinationTypes() {
            return services.keySet();
        }

        @Override
        public Set<String> supportedResponseTypes() {
            return Set.of();
        }
    }

    @Test
    void registersAnEdrServiceForProvisionHttpOnly() throws Exception {
        var registry = new RecordingRegistry();
        var extension = new ProvisionHttpPullExtension();
        Field field = ProvisionHttpPullExtension.class.getDeclaredField("edrServices");
        field.setAccessible(true);
        field.set(extension, registry);

        extension.initialize(null);

        assertEquals(Set.of("ProvisionHttp"), registry.services.keySet());
        assertInstanceOf(ProvisionedAddressEdrService.class, registry.services.get("ProvisionHttp"));
    }
}

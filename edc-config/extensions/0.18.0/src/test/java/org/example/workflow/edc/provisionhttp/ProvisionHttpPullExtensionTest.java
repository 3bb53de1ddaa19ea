package org.example.workflow.edc.provisionhttp;

import org.eclipse.edc.connector.dataplane.spi.DataFlow;
import org.eclipse.edc.connector.dataplane.spi.Endpoint;
import org.eclipse.edc.connector.dataplane.spi.edr.EndpointDataReferenceService;
import org.eclipse.edc.connector.dataplane.spi.edr.EndpointDataReferenceServiceRegistry;
import org.eclipse.edc.connector.dataplane.spi.iam.DataPlaneAuthorizationService;
import org.eclipse.edc.connector.dataplane.spi.iam.PublicEndpointGeneratorService;
import org.eclipse.edc.spi.EdcException;
import org.eclipse.edc.spi.result.Result;
import org.eclipse.edc.spi.result.ServiceResult;
import org.eclipse.edc.spi.types.domain.DataAddress;
import org.junit.jupiter.api.Test;

import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ProvisionHttpPullExtensionTest {

    private static final String EDC = "https://w3id.org/edc/v0.0.1/ns/";

    /** Keyed registrations, as the data plane's registry keeps them. */
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

    /** Generator functions by destination type, as the data plane's generator service keeps them. */
    static class RecordingGenerator implements PublicEndpointGeneratorService {
        final Map<String, Function<DataAddress, Endpoint>> functions = new HashMap<>();

        @Override
        public Result<Endpoint> generateFor(String destinationType, DataAddress sourceDataAddress) {
            return Result.success(functions.get(destinationType).apply(sourceDataAddress));
        }

        @Override
        public Result<Endpoint> generateResponseFor(String responseChannelType) {
            throw new AssertionError("not used");
        }

        @Override
        public void addGeneratorFunction(String destinationType, Function<DataAddress, Endpoint> generatorFunction) {
            functions.put(destinationType, generatorFunction);
        }

        @Override
        public void addResponseGeneratorFunction(String responseChannelType, Supplier<Endpoint> generatorFunction) {
            throw new AssertionError("not used");
        }
    }

    /** The shape of the data plane's authorization service: it also creates and revokes EDRs. */
    static class AuthorizationAndEdrService implements DataPlaneAuthorizationService, EndpointDataReferenceService {
        @Override
        public Result<DataAddress> authorize(String token, Map<String, Object> requestData) {
            return Result.failure("not used");
        }

        @Override
        public Result<DataAddress> createEndpointDataReference(DataFlow dataFlow) {
            return Result.failure("not used");
        }

        @Override
        public ServiceResult<Void> revokeEndpointDataReference(String flowId, String reason) {
            return ServiceResult.success();
        }
    }

    @Test
    void theAuthorizationServiceCreatesTheEdrsOfProvisionHttpSources() {
        var registry = new RecordingRegistry();
        var authorization = new AuthorizationAndEdrService();
        var generator = new RecordingGenerator();

        ProvisionHttpPullExtension.register(registry, authorization, generator);

        assertEquals(Set.of("ProvisionHttp"), registry.services.keySet());
        assertSame(authorization, registry.services.get("ProvisionHttp"));
        assertEquals(Set.of("HttpData"), generator.functions.keySet());
    }

    @Test
    void anAuthorizationServiceThatCreatesNoEdrsStopsTheStart() {
        DataPlaneAuthorizationService tokenCheckOnly = (token, requestData) -> Result.failure("not used");

        assertThrows(EdcException.class,
                () -> ProvisionHttpPullExtension.register(new RecordingRegistry(), tokenCheckOnly, new RecordingGenerator()));
    }

    @Test
    void theEndpointIsTheProvisionedWorkflowApi() {
        var provisioned = DataAddress.Builder.newInstance().type("https://w3id.org/idsa/v4.1/HTTP")
                .property(EDC + "endpoint", "http://127.0.0.1:9000/consumers/c1")
                .property(EDC + "authorization", "the-provisioners-token").build();

        var endpoint = ProvisionHttpPullExtension.endpointOf(provisioned);

        assertEquals("http://127.0.0.1:9000/consumers/c1", endpoint.endpoint());
        assertEquals("https://w3id.org/idsa/v4.1/HTTP", endpoint.endpointType());
    }

    @Test
    void aPlainHttpDataSourceNeverHasItsOwnUrlHandedOut() {
        var backend = DataAddress.Builder.newInstance().type("HttpData")
                .property(EDC + "baseUrl", "http://127.0.0.1:8080/internal-backend").build();

        var endpoint = ProvisionHttpPullExtension.endpointOf(backend);

        assertEquals(ProvisionHttpPullExtension.NO_PUBLIC_ENDPOINT, endpoint.endpoint());
        assertTrue(!endpoint.endpoint().contains("internal-backend"));
    }
}

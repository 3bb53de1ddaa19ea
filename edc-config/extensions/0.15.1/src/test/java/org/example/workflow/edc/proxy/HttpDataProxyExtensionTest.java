package org.example.workflow.edc.proxy;

import org.eclipse.edc.connector.dataplane.spi.Endpoint;
import org.eclipse.edc.connector.dataplane.spi.iam.PublicEndpointGeneratorService;
import org.eclipse.edc.spi.result.Result;
import org.eclipse.edc.spi.types.domain.DataAddress;
import org.junit.jupiter.api.Test;

import java.util.HashMap;
import java.util.Map;
import java.util.function.Function;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.assertEquals;

class HttpDataProxyExtensionTest {

    /** Keeps the generator functions, as the data plane's generator service does. */
    static class RecordingGenerator implements PublicEndpointGeneratorService {
        final Map<String, Function<DataAddress, Endpoint>> functions = new HashMap<>();

        @Override
        public Result<Endpoint> generateFor(String destinationType, DataAddress sourceDataAddress) {
            var function = functions.get(destinationType);
            return function == null ? Result.failure("none for " + destinationType) : Result.success(function.apply(sourceDataAddress));
        }

        @Override
        public Result<Endpoint> generateResponseFor(String responseChannelType) {
            return Result.failure("no response channels");
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

    @Test
    void httpDataEdrsPointAtTheProxyNeverAtTheSource() {
        var generator = new RecordingGenerator();
        HttpDataProxyExtension.register(generator, "http://127.0.0.1:19291/public");
        var source = DataAddress.Builder.newInstance().type("HttpData")
                .property("https://w3id.org/edc/v0.0.1/ns/baseUrl", "http://127.0.0.1:8000/credentials").build();

        var endpoint = generator.generateFor("HttpData", source);

        assertEquals("http://127.0.0.1:19291/public", endpoint.getContent().endpoint());
        assertEquals("https://w3id.org/idsa/v4.1/HTTP", endpoint.getContent().endpointType());
        assertEquals(1, generator.functions.size());
    }
}

package org.example.workflow.edc.proxy;

import com.sun.net.httpserver.HttpServer;
import dev.failsafe.RetryPolicy;
import okhttp3.OkHttpClient;
import org.eclipse.edc.connector.dataplane.spi.iam.DataPlaneAuthorizationService;
import org.eclipse.edc.http.client.EdcHttpClientImpl;
import org.eclipse.edc.spi.monitor.ConsoleMonitor;
import org.eclipse.edc.spi.result.Result;
import org.eclipse.edc.spi.types.domain.DataAddress;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The proxy against a real HTTP server on loopback and EDC's real HTTP client; the token check is a stand-in. */
class HttpDataProxyControllerTest {

    private static final String EDC = "https://w3id.org/edc/v0.0.1/ns/";
    private static final String CREDENTIALS = "{\"endpoint\":\"http://127.0.0.1:9/c1\",\"token\":\"t\"}";

    private HttpServer upstream;
    private final List<String> seenAuthorization = new ArrayList<>();
    private final List<String> tokensAsked = new ArrayList<>();

    @BeforeEach
    void startUpstream() throws Exception {
        upstream = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        upstream.createContext("/credentials", exchange -> {
            seenAuthorization.add(exchange.getRequestHeaders().getFirst("Authorization"));
            var body = CREDENTIALS.getBytes(StandardCharsets.UTF_8);
            exchange.getResponseHeaders().add("Content-Type", "application/json");
            exchange.sendResponseHeaders(200, body.length);
            exchange.getResponseBody().write(body);
            exchange.close();
        });
        upstream.createContext("/big", exchange -> {
            exchange.sendResponseHeaders(200, 0);
            exchange.getResponseBody().write(new byte[HttpDataProxyController.MAX_BODY_BYTES + 10]);
            exchange.close();
        });
        upstream.start();
    }

    @AfterEach
    void stopUpstream() {
        upstream.stop(0);
    }

    private String url(String path) {
        return "http://127.0.0.1:%d%s".formatted(upstream.getAddress().getPort(), path);
    }

    private DataAddress httpData(String baseUrl) {
        return DataAddress.Builder.newInstance().type("HttpData")
                .property(EDC + "baseUrl", baseUrl)
                .property(EDC + "authKey", "Authorization")
                .property(EDC + "authCode", "Bearer grant-secret")
                .build();
    }

    private HttpDataProxyController proxy(DataAddress source) {
        DataPlaneAuthorizationService authorization = (token, requestData) -> {
            tokensAsked.add(token);
            assertEquals(Map.of("method", "GET"), requestData);
            return "edr-token".equals(token) ? Result.success(source) : Result.failure("invalid token");
        };
        var okHttp = new OkHttpClient.Builder().callTimeout(Duration.ofSeconds(5)).build();
        var retry = RetryPolicy.<okhttp3.Response>builder().withMaxRetries(0).build();
        return new HttpDataProxyController(authorization, new EdcHttpClientImpl(okHttp, retry, new ConsoleMonitor()), new ConsoleMonitor());
    }

    private static String text(jakarta.ws.rs.core.Response response) {
        var entity = response.getEntity();
        return entity instanceof byte[] bytes ? new String(bytes, StandardCharsets.UTF_8) : String.valueOf(entity);
    }

    @Test
    void aValidTokenFetchesTheSourceWithItsSecretHeader() {
        var response = proxy(httpData(url("/credentials"))).get("edr-token");

        assertEquals(200, response.getStatus());
        assertEquals(CREDENTIALS, text(response));
        assertEquals("application/json", response.getMediaType().toString());
        assertEquals(List.of("Bearer grant-secret"), seenAuthorization);
    }

    @Test
    void aBearerPrefixIsAccepted() {
        var response = proxy(httpData(url("/credentials"))).get("Bearer edr-token");

        assertEquals(200, response.getStatus());
        assertEquals(List.of("edr-token"), tokensAsked);
    }

    @Test
    void noTokenIs401AndTheSourceIsNotAsked() {
        var response = proxy(httpData(url("/credentials"))).get(null);

        assertEquals(401, response.getStatus());
        assertEquals(HttpDataProxyController.PROBLEM_JSON, response.getMediaType().toString());
        assertTrue(seenAuthorization.isEmpty());
    }

    @Test
    void anInvalidTokenIs403AndTheSourceIsNotAsked() {
        var response = proxy(httpData(url("/credentials"))).get("forged");

        assertEquals(403, response.getStatus());
        assertTrue(text(response).contains("not a valid EDR token"));
        assertTrue(seenAuthorization.isEmpty());
    }

    @Test
    void aSourceThatIsNotHttpDataIs502() {
        var other = DataAddress.Builder.newInstance().type("AmazonS3").property(EDC + "baseUrl", url("/credentials")).build();

        var response = proxy(other).get("edr-token");

        assertEquals(502, response.getStatus());
        assertTrue(seenAuthorization.isEmpty());
    }

    @Test
    void anUnreachableSourceIs502() {
        var port = upstream.getAddress().getPort();
        upstream.stop(0);

        var response = proxy(httpData("http://127.0.0.1:%d/credentials".formatted(port))).get("edr-token");

        assertEquals(502, response.getStatus());
        assertTrue(text(response).contains("did not answer"));
    }

    @Test
    void anOversizedAnswerIs502() {
        var response = proxy(httpData(url("/big"))).get("edr-token");

        assertEquals(502, response.getStatus());
        assertTrue(text(response).contains("larger than"));
    }
}

package org.example.workflow.edc.proxy;

import jakarta.ws.rs.GET;
import jakarta.ws.rs.HeaderParam;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.core.HttpHeaders;
import jakarta.ws.rs.core.Response;
import okhttp3.Request;
import org.eclipse.edc.connector.dataplane.spi.iam.DataPlaneAuthorizationService;
import org.eclipse.edc.http.spi.EdcHttpClient;
import org.eclipse.edc.spi.monitor.Monitor;
import org.eclipse.edc.spi.types.domain.DataAddress;

import java.io.IOException;
import java.util.Map;

import static org.eclipse.edc.spi.constants.CoreConstants.EDC_NAMESPACE;

/**
 * The provider's public endpoint of HTTP-PULL transfers (EDC 0.15 ships no public data plane API): a consumer sends
 * {@code GET} with its EDR's token in {@code Authorization} (raw, as EDC hands it out; a {@code Bearer } prefix is
 * accepted too). The data plane resolves the token to the transfer's source {@code HttpData} address, and the proxy
 * fetches exactly that URL, adding the address's {@code authKey}/{@code authCode} header, which the consumer never
 * sees. For the workflow provisioner the source is its {@code /credentials} endpoint, so the answer is the
 * consumer's workflow-api endpoint and token. Nothing of the request but the token is passed on.
 */
@Path("/")
public class HttpDataProxyController {

    static final String HTTP_DATA = "HttpData";
    static final String PROBLEM_JSON = "application/problem+json";
    static final int MAX_BODY_BYTES = 1024 * 1024;

    private final DataPlaneAuthorizationService authorization;
    private final EdcHttpClient httpClient;
    private final Monitor monitor;

    public HttpDataProxyController(DataPlaneAuthorizationService authorization, EdcHttpClient httpClient, Monitor monitor) {
        this.authorization = authorization;
        this.httpClient = httpClient;
        this.monitor = monitor;
    }

    @GET
    public Response get(@HeaderParam(HttpHeaders.AUTHORIZATION) String header) {
        if (header == null || header.isBlank()) {
            return problem(401, "Send the EDR's token in the Authorization header.");
        }
        var token = header.strip();
        if (token.regionMatches(true, 0, "Bearer ", 0, 7)) {
            token = token.substring(7).strip();
        }
        var source = authorization.authorize(token, Map.of("method", "GET"));
        if (source.failed()) {
            return problem(403, "The token is not a valid EDR token of this connector (expired, revoked or forged).");
        }
        var address = source.getContent();
        var baseUrl = address.getStringProperty(EDC_NAMESPACE + "baseUrl");
        if (!HTTP_DATA.equals(address.getType()) || baseUrl == null) {
            monitor.warning("HTTP-PULL proxy: the transfer's source is not an HttpData address with a baseUrl");
            return problem(502, "This transfer's source cannot be fetched.");
        }
        return fetch(address, baseUrl);
    }

    private Response fetch(DataAddress address, String baseUrl) {
        var request = new Request.Builder().url(baseUrl).get();
        var authKey = address.getStringProperty(EDC_NAMESPACE + "authKey");
        var authCode = address.getStringProperty(EDC_NAMESPACE + "authCode");
        if (authKey != null && authCode != null) {
            request.header(authKey, authCode);
        }
        try (var response = httpClient.execute(request.build())) {
            var body = response.body();
            var bytes = body == null ? new byte[0] : body.byteStream().readNBytes(MAX_BODY_BYTES + 1);
            if (bytes.length > MAX_BODY_BYTES) {
                return problem(502, "The source's answer is larger than " + MAX_BODY_BYTES + " bytes.");
            }
            var contentType = response.header("Content-Type", "application/octet-stream");
            return Response.status(response.code()).type(contentType).entity(bytes).build();
        } catch (IOException | IllegalStateException error) {
            monitor.warning("HTTP-PULL proxy: the source did not answer: " + error.getClass().getSimpleName());
            return problem(502, "The source did not answer.");
        }
    }

    static Response problem(int status, String detail) {
        var title = switch (status) {
            case 401 -> "Unauthorized";
            case 403 -> "Forbidden";
            default -> "Bad Gateway";
        };
        var json = "{\"type\":\"about:blank\",\"title\":\"%s\",\"status\":%d,\"detail\":\"%s\"}".formatted(title, status, detail);
        return Response.status(status).type(PROBLEM_JSON).entity(json).build();
    }
}

"""The official OGC API - Processes conformance suite (OGC CITE), run offline against a real server.

The suite cannot send a token and fetches the standard's schemas from the OGC schema site; here a
loopback reverse proxy adds the consumer's token (`bearer_proxy`), and the schema site is served on
loopback from the standard's tarball (`schema_site`) behind a forward proxy that lets the JVM reach
that one host and nothing else (`tunnel`). `suite` runs the jar and reads its TestNG report.
"""

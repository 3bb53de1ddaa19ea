"""A stand-in EDC connector for the provisioner's tests.

It speaks the wire formats of EDC's legacy `provision-http` (≤ 0.15) and `data-plane-provision-http`
(0.14-0.18) extensions and a slice of the Management API v3, over real HTTP, as captured in
`/work/shared/reference/edc-provisioning.md`:

- `policy`: contract policies with `inForceDate` constraints (pure data);
- `model`: the in-memory world (assets, agreements, transfer processes, data flows, records);
- `wire`: the exact JSON EDC sends and answers (pure functions);
- `validation`: how EDC reads what the provisioner sends back (pure functions);
- `commands`: what EDC does with callbacks and with the provisioner's answers;
- `server`: the Starlette app (Management API, legacy and data-plane callbacks);
- `driver`: the EDC side that sends provision/deprovision requests;
- `fixture`: the pytest fixture `edc_standin` and `serve_in_thread`.

`RECORDED` holds what real connectors sent and answered (`recorded/README.md`), which the
stand-in's tests replay against it.
"""

from pathlib import Path

RECORDED = Path(__file__).resolve().parent / "recorded"

"""Fetches every chart of the cinerec dashboard through Superset's REST API.

Run by dashboard/test.sh with the Superset virtualenv's Python:

    check_charts.py BASE_URL BUNDLE_DIR

Logs in (/api/v1/security/login), finds the bundle's charts by uuid, points
each chart's saved query context at the dataset it was imported onto (an
exported query context names the exporting instance's dataset id; the
dashboard UI builds its queries from the chart params and does not need
this), then GETs /api/v1/chart/{id}/data/ and fails unless every chart
returns rows. Prints one line per chart.
"""

import json
import pathlib
import sys

import requests
import yaml


def main(base: str, bundle: str) -> int:
    charts = {}
    for path in sorted(pathlib.Path(bundle, "charts").glob("*.yaml")):
        chart = yaml.safe_load(path.read_text())
        charts[chart["uuid"]] = chart
    s = requests.Session()
    login = s.post(
        f"{base}/api/v1/security/login",
        json={"username": "admin", "password": "admin", "provider": "db", "refresh": False},
        timeout=30,
    )
    login.raise_for_status()
    s.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    # Writes (the PUT below) need a CSRF token bound to the session cookie.
    csrf = s.get(f"{base}/api/v1/security/csrf_token/", timeout=30)
    csrf.raise_for_status()
    s.headers["X-CSRFToken"] = csrf.json()["result"]
    s.headers["Referer"] = base
    listed = s.get(
        f"{base}/api/v1/chart/",
        params={"q": "(page_size:100,columns:!(id,uuid,slice_name,datasource_id))"},
        timeout=30,
    )
    listed.raise_for_status()
    found = {c["uuid"]: c for c in listed.json()["result"] if c["uuid"] in charts}
    failures = []
    for uuid, chart in charts.items():
        name = chart["slice_name"]
        if uuid not in found:
            failures.append(f"{name}: not imported")
            continue
        row = found[uuid]
        qc = json.loads(chart["query_context"])
        qc["datasource"] = {"id": row["datasource_id"], "type": "table"}
        qc["form_data"]["datasource"] = f"{row['datasource_id']}__table"
        put = s.put(
            f"{base}/api/v1/chart/{row['id']}",
            json={"query_context": json.dumps(qc), "query_context_generation": True},
            timeout=30,
        )
        if put.status_code != 200:
            failures.append(f"{name}: saving the query context: {put.status_code} {put.text[:300]}")
            continue
        data = s.get(f"{base}/api/v1/chart/{row['id']}/data/", timeout=60)
        if data.status_code != 200:
            failures.append(f"{name}: {data.status_code} {data.text[:300]}")
            continue
        rows = sum(len(r.get("data") or []) for r in data.json().get("result", []))
        print(f"  chart {row['id']:>3} {name!r}: {rows} rows")
        if rows == 0:
            failures.append(f"{name}: no rows")
    for f in failures:
        print(f"FAIL {f}", file=sys.stderr)
    print(f"charts: {len(charts) - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))

"""Opens permitflow's HTML report in headless Chromium and reads the same figures from the marts with DuckDB.

Usage: check_report.py REPORT.html WAREHOUSE_DIR SCREENSHOT.png   (Chromium's path in $PERMITFLOW_CHROMIUM)

Prints one JSON object; the Rust test (crates/cli/tests/report.rs) makes the assertions:
- console: every console message, errors: uncaught page errors, requests: every URL the page requested;
- charts: per figure its id, its data-points attribute, how many SVG elements carry a data colour (the
  series' palette or the target red, never the axes' greys), and its rendered width;
- layout: the page's scroll width at 1280 px, and in print media at A4 width;
- page: the figures of the indicator, forecast, accuracy and resource tables as the page shows them;
- marts: the same figures computed by DuckDB from the marts' Parquet files (read_parquet).
"""
import json
import os
import sys

import duckdb
from playwright.sync_api import sync_playwright

report, warehouse, screenshot = sys.argv[1:4]
chromium = os.environ.get("PERMITFLOW_CHROMIUM", "/usr/bin/chromium")

DATA_COLOURS = "(0072B2|E69F00|009E73|CC79A7|56B4E9|D55E00|C81E1E)"
CHARTS_JS = """(figures) => figures.map(f => ({
  id: f.id,
  points: Number(f.dataset.points),
  coloured: [...f.querySelectorAll('svg *')].filter(e =>
    new RegExp('#%s', 'i').test((e.getAttribute('stroke') || '') + ' ' + (e.getAttribute('fill') || ''))).length,
  width: f.getBoundingClientRect().width,
}))""" % DATA_COLOURS
ROWS_JS = """(rows) => rows.map(r => ({
  key: [...Object.entries(r.dataset)].map(([k, v]) => k + '=' + v).join('|'),
  values: [...r.querySelectorAll('td[data-value]')].map(td => td.dataset.value),
  status: (r.querySelector('td:last-child') || {}).textContent,
}))"""

result = {"console": [], "errors": [], "requests": []}
with sync_playwright() as p:
    browser = p.chromium.launch(
        executable_path=chromium,
        args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync"],
    )
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("console", lambda m: result["console"].append({"type": m.type, "text": m.text}))
    page.on("pageerror", lambda e: result["errors"].append(str(e)))
    page.on("request", lambda r: result["requests"].append(r.url))
    page.goto("file://" + os.path.abspath(report), wait_until="load")
    page.screenshot(path=screenshot, full_page=True)
    result["charts"] = page.eval_on_selector_all("figure.chart", CHARTS_JS)
    result["layout"] = {"screen_scroll_width": page.evaluate("document.documentElement.scrollWidth")}
    result["page"] = {
        table: page.eval_on_selector_all(f"#{table} tbody tr", ROWS_JS)
        for table in ["indicator-table", "forecast-table", "accuracy-table", "resource-table"]
    }
    result["missed_count"] = page.text_content("#missed-count b")
    page.emulate_media(media="print")
    page.set_viewport_size({"width": 794, "height": 1123})
    result["layout"]["print_scroll_width"] = page.evaluate("document.documentElement.scrollWidth")
    result["layout"]["pdf_bytes"] = len(page.pdf(format="A4"))
    browser.close()

con = duckdb.connect()


def mart(name):
    return f"read_parquet('{warehouse}/marts/{name}/*/*.parquet', hive_partitioning = true)"


period = con.execute(f"SELECT max(period) FROM {mart('decisions_per_person_year')} WHERE period_type = 'year'").fetchall()[0][0]
marts = {"period": period}
marts["indicator-table"] = {
    "decisions per person-year|agency": con.execute(
        f"SELECT decisions_per_person_year FROM {mart('decisions_per_person_year')} "
        f"WHERE period_type = 'year' AND period = '{period}' AND scope = 'agency'").fetchall()[0][0],
    "backlog at end of period|all": float(con.execute(
        f"SELECT pending_at_end FROM {mart('backlog')} "
        f"WHERE period_type = 'year' AND period = '{period}' AND permit_type = 'all'").fetchall()[0][0]),
}
for permit_type, median in con.execute(
        f"SELECT permit_type, median_days FROM {mart('processing_times')} "
        f"WHERE period_type = 'year' AND period = '{period}' AND target_days IS NOT NULL").fetchall():
    marts["indicator-table"][f"processing time, median days|{permit_type}"] = median
marts["missed_processing_targets"] = con.execute(
    f"SELECT count(*) FROM {mart('processing_times')} WHERE period_type = 'year' AND period = '{period}' "
    "AND target_days IS NOT NULL AND median_days > target_days").fetchall()[0][0]
marts["forecast-table"] = dict(con.execute(
    f"SELECT period, forecast FROM {mart('inflow_forecast')} WHERE permit_type = 'all' ORDER BY period").fetchall())
marts["accuracy-table"] = dict(con.execute(
    f"SELECT permit_type, sum(mase * origins) / sum(origins) FROM {mart('forecast_accuracy')} "
    "GROUP BY permit_type").fetchall())
marts["resource-table"] = dict(con.execute(
    f"SELECT permit_type, sum(person_years_needed) FROM {mart('resource_forecast')} GROUP BY permit_type").fetchall())
result["marts"] = marts
print(json.dumps(result))

r"""Screenshot of MLflow's comparison of the latest fine-tuning runs, in headless Chromium.

Usage::

    python scripts/mlflow_compare_screenshot.py --tracking-uri http://127.0.0.1:5000 \\
        --out docs/mlflow_run_comparison.png [--runs 3]

It compares the newest runs of the fine-tuning experiment (``genai_assets/fine_tuning``
unless ``--experiment`` says otherwise), as a person would open them from the
experiment page. Chromium is Debian's (``/usr/bin/chromium``): playwright cannot
download its own browser here.
"""

import argparse
import json
import sys
from urllib.parse import quote

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main(argv: list[str] | None = None) -> int:
    """Take the screenshot; exit 1 when there is nothing to compare."""
    parser = argparse.ArgumentParser(prog="python scripts/mlflow_compare_screenshot.py")
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--experiment", default="genai_assets/fine_tuning")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)

    from mlflow import MlflowClient
    from playwright.sync_api import sync_playwright

    client = MlflowClient(args.tracking_uri)
    experiment = client.get_experiment_by_name(args.experiment)
    if experiment is None:
        print(f"no experiment {args.experiment!r} at {args.tracking_uri}", file=sys.stderr)
        return 1
    runs = client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=args.runs
    )
    if len(runs) < 2:
        print(f"{args.experiment!r} has {len(runs)} runs; a comparison needs 2", file=sys.stderr)
        return 1
    ids = json.dumps([run.info.run_id for run in runs])
    experiments = json.dumps([experiment.experiment_id])
    url = (
        f"{args.tracking_uri.rstrip('/')}/#/compare-runs?runs={quote(ids)}"
        f"&experiments={quote(experiments)}"
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1500})
        page.goto(url, wait_until="networkidle")
        page.get_by_text("Parameters").first.wait_for(timeout=60_000)
        for label in ("Close guidance", "Close"):  # MLflow 3's tips and its chat side panel
            button = page.get_by_role("button", name=label, exact=True)
            if button.count():
                button.first.click()
        # Fold the plots and run details: the parameters and metrics side by side are the point.
        for section in ("Visualizations", "Run details"):
            page.get_by_text(section, exact=True).first.click()
        page.get_by_text("Metrics", exact=True).first.wait_for()
        page.get_by_role("switch").first.click()  # parameters: only those that differ
        page.wait_for_timeout(1000)
        page.screenshot(path=args.out)
        browser.close()
    print(f"{url}\n-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

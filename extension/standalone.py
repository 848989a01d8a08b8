"""The Certain Strategy tab without a WebUI: `python -m extension.standalone [--port N] [--listen]`, run with a Python
that has gradio (`extension/requirements-ui.txt`); the jobs run with the toolkit's own Python (`--python`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from certain_strategy_ui.settings import UiSettings  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    base = UiSettings.defaults()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=7870)
    parser.add_argument("--listen", action="store_true", help="serve on every network interface, not 127.0.0.1 only")
    parser.add_argument("--toolkit", default=str(base.toolkit), help="the toolkit's folder (holds train_certain.py)")
    parser.add_argument("--python", default=base.python, help="the Python that runs the toolkit's scripts")
    parser.add_argument("--output", default=str(base.output), help="the folder for the runs started here")
    args = parser.parse_args(argv)
    settings = UiSettings.from_values({"toolkit": args.toolkit, "python": args.python, "output": args.output})
    for problem in settings.check():
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from certain_strategy_ui.ui import build_ui

    css = (Path(__file__).with_name("style.css")).read_text(encoding="utf-8")  # the WebUI adds it by itself
    build_ui(settings, css=css).queue().launch(server_name="0.0.0.0" if args.listen else "127.0.0.1",
                                               server_port=args.port, show_api=False)  # the scripts are the API
    return 0


if __name__ == "__main__":
    sys.exit(main())

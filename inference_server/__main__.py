"""`python -m inference_server serve` | `tiny-model DIR`."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference_server")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="serve the HTTP API (settings from the environment)")
    tiny = commands.add_parser("tiny-model", help="build the tiny random-weight Qwen-Image pipeline into DIR")
    tiny.add_argument("directory")
    tiny.add_argument("--size", choices=["tiny", "mid"], default="tiny", help="mid: the benchmark model")
    args = parser.parse_args(argv)
    if args.command == "serve":
        from inference_server.serve import serve

        serve()
        return 0
    from inference_server.engine.tiny_model import MID, TINY, save_tiny_model

    folder = save_tiny_model(args.directory, MID if args.size == "mid" else TINY)
    sys.stderr.write(f"saved a random-weight Qwen-Image pipeline to {folder}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""seq2seq-serve: a translation server (HTTP, JSON) for a checkpoint, batching concurrent requests."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

import torch

from seq2seq.cli.common import run_command
from seq2seq.errors import InputError
from seq2seq.inference.translator import Translator
from seq2seq.serving.batcher import model_thread
from seq2seq.serving.limits import Limits
from seq2seq.training.checkpoint import load_checkpoint

log = logging.getLogger("seq2seq.serve")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = Limits()
    parser = argparse.ArgumentParser(
        prog="seq2seq-serve",
        description='Serve a checkpoint over HTTP: POST /translate {"text": ...}, GET /health, /ready, /metrics '
        "(Prometheus) and /docs. Concurrent requests are batched; each answer is the one the sentence gets alone.",
    )
    parser.add_argument("--checkpoint", required=True, type=Path, help="a .ckpt written by train.py")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda"
    )
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="CPU threads for the model"
    )
    for name, help_text in (
        ("max_wait_ms", "a batch starts once no sentence has joined the queue for this long"),
        ("max_delay_ms", "the longest a batch waits for company once it could start"),
        ("max_tokens", "padded source pieces per batch"),
        ("max_length", "source pieces per sentence; longer ones are refused (422)"),
        ("max_request_sentences", "sentences per request (413 above)"),
        ("max_body_bytes", "request body size (413 above)"),
        ("max_beam", "largest beam_size a request may ask for"),
        ("max_queue", "sentences waiting for a batch; a request beyond gets 503 and Retry-After"),
    ):
        default = getattr(defaults, name)
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=type(default),
            default=default,
            help=f"{help_text} (default {default})",
        )
    return parser.parse_args(argv)


def serve(args: argparse.Namespace) -> None:
    try:
        import uvicorn

        from seq2seq.serving.app import create_app, exact_padding
    except ImportError as missing:
        raise InputError(
            f"seq2seq-serve needs the server's libraries ({missing.name} is not installed): "
            f"pip install 'seq2seq[serve]'"
        ) from None
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    if args.threads < 1:
        raise InputError(f"--threads must be at least 1; got {args.threads}")
    limits = Limits(**{name: getattr(args, name) for name in Limits.__dataclass_fields__})
    worker = model_thread(args.threads)
    loaded = worker.submit(load_checkpoint, args.checkpoint, args.device).result()
    note = exact_padding(loaded.net)  # logged once the server is ready
    translator = Translator(loaded.net, loaded.vocabs, args.device, batch_size=limits.max_tokens)
    stopped: list[str] = []
    # uvicorn stops on SIGTERM or SIGINT once every request in flight is answered, then raises the signal
    # again for the handler that was there before it: here that handler only records it, since a drained
    # stop is a clean one (exit 0, no KeyboardInterrupt traceback).
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda received, frame: stopped.append(signal.Signals(received).name))
    app = create_app(translator, limits, note, worker)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    log.info("stopped%s after answering every request in flight", f" by {stopped[0]}" if stopped else "")


def main(argv: list[str] | None = None) -> None:
    run_command(lambda: serve(parse_args(argv)))


if __name__ == "__main__":
    main()

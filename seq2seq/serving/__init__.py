"""Serving trained models over HTTP: the API (`app`) and the dynamic batcher behind it (`batcher`).

Above `inference`, whose `Translator` decodes each batch; `seq2seq-serve` (`seq2seq.cli.serve`) runs it.
"""

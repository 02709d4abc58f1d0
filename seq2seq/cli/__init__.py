"""Console commands: seq2seq-translate and seq2seq-evaluate."""

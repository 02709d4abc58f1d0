"""Train a seq2seq model: `python train.py encoder=lstm strategy=masking` (see README.md)."""

from seq2seq.train import main

if __name__ == "__main__":
    main()

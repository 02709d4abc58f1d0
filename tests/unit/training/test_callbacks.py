from seq2seq.training.callbacks import PaddingMonitor


def test_bucket_names_cover_every_length() -> None:
    monitor = PaddingMonitor(bucket_edges=[16, 8])
    assert [monitor.bucket_name(i) for i in range(3)] == ["1-8", "9-16", "17+"]


def test_summary_is_token_weighted() -> None:
    monitor = PaddingMonitor()
    monitor.pad_tokens, monitor.all_tokens, monitor.tgt_tokens, monitor.step_seconds = 10, 1000, 400, 2.0
    assert monitor.summary() == {"train/pad_fraction": 0.01, "train/tokens_per_sec": 200.0}

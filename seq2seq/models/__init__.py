"""The networks: encoders, the attentional RNN decoder, attention, loss, search and FLOP counts."""

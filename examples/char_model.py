"""A character model: learns a text with stateful truncated BPTT, then writes more of it."""
import fastrnn
from fastrnn import LSTM, Dense, Embedding, Sequential
from fastrnn.data import Vocabulary, sequence_batches

text = ("if you want to build a ship, don't drum up people together to collect wood and don't assign them tasks "
        "and work, but rather teach them to long for the endless immensity of the sea. ") * 20
vocabulary = Vocabulary(text)
x, y = sequence_batches(vocabulary.encode(text), batch_size=16, seq_len=25)
model = Sequential([Embedding(len(vocabulary), 16), LSTM(16, 64, batch_first=True), Dense(64, len(vocabulary))],
                   vocabulary=vocabulary)
model.compile(fastrnn.optim.Adam(lr=0.01, clip_norm=5.0), "cross_entropy")
model.fit(x, y, epochs=20, batch_size=16, shuffle=False, stateful=True, verbose=2)
print(model.generate("if you ", 150, temperature=0.5))

"""The demos behind `fastrnn-demo NAME` (or `python -m fastrnn.demos NAME`): one module per
demo, each a short tutorial with a `main(argv)` that returns its final metrics as a dict."""

# In the order `fastrnn-demo --help` lists them: character models, the text classifier and sorting, then
# time series.
DEMOS = ("hihello", "sentence", "ship", "sixpence", "charlm", "classify", "sort", "sine", "stock", "vibration")

"""How a planned job runs: an executor takes plans and gives back typed events (`events.py`).

`local.py` runs the engine in a child process it supervises (`child.py`); `in_process.py` runs it on a
thread of this process, for tests that build the app with a fake engine. Nothing here imports `jobs/`.
"""

"""The local generation engines, one role per file:

- ``protocol.py``   ``GenerationEngine``: what LocalBackend needs from an engine
- ``queue.py``      ``RequestQueue`` (admission, the in-flight bound, worker death) and the
                    consumer's ``TokenStream`` — shared by both engines
- ``transformers.py`` the continuous-batching engine (any transformers model, CUDA or CPU)
- ``kv_batch.py``   its batched, left-padded KV cache
- ``llamacpp.py``   the llama.cpp engine (GGUF on CPU kernels)
- ``sequence.py``   one request being served: prefill, accept a row of logits, stop rules
- ``sampling.py``   ``SamplingParams`` and the per-request ``Sampler`` (TGI's semantics)
- ``grammar.py``    constrained decoding (llguidance)
- ``select.py``     which engine runs (``--engine``), loading for it, building it
- ``probe.py``      llama.cpp's canary and build check (does it run on this CPU?)
- ``faults.py``     failures injected on purpose, for tests (``PLAYGROUND_FAULTS=oom@N``)

Nothing is imported here, so importing one module does not load the others (torch and
llama_cpp are imported lazily inside them).
"""

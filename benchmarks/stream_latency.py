"""Time to first token of a streamed reply (`HFBackend.stream`, what the gateway's `stream: true`
sends) beside the time of the whole reply (`complete`, what a request without streaming waits
for), on the same prompts, model and settings, alternating; target: the first token in at most a
quarter of the whole reply's time. Also the whole reply generated in a second thread (as a server's
thread pool runs it), beside the same call in this one.

    python benchmarks/stream_latency.py [--model smollm2-135m] [--tokens 128] [--repeats 3]

Ends with one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time

from tasksafe.generate.base import GenerationParams
from tasksafe.generate.hf import Completion, HFBackend

PROMPTS = ("Write a short story about a lighthouse keeper.", "Explain how a bicycle gear works, step by step.",
           "Describe a walk through a forest in autumn.")
TARGET = 0.25


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    backend = HFBackend.from_name(args.model)
    params = GenerationParams(max_new_tokens=args.tokens)
    first, stream_total, whole, threaded, tokens = [], [], [], [], []
    backend.complete([[{"role": "user", "content": "Hello."}]], GenerationParams(max_new_tokens=4))  # warm-up
    for _ in range(args.repeats):
        for prompt in PROMPTS:
            conversation = [{"role": "user", "content": prompt}]
            start = time.perf_counter()
            arrived = None
            for piece in backend.stream(conversation, params):
                if not isinstance(piece, Completion) and arrived is None:
                    arrived = time.perf_counter() - start
            stream_total.append(time.perf_counter() - start)
            first.append(arrived)
            start = time.perf_counter()
            reply = backend.complete([conversation], params)[0]
            whole.append(time.perf_counter() - start)
            tokens.append(reply.completion_tokens)
            worker = threading.Thread(target=backend.complete, args=([conversation], params))
            start = time.perf_counter()
            worker.start()
            worker.join()
            threaded.append(time.perf_counter() - start)
    ttft, full, streamed = statistics.median(first), statistics.median(whole), statistics.median(stream_total)
    in_thread = statistics.median(threaded)
    ratio = ttft / full
    print(f"model {args.model}, greedy, up to {args.tokens} new tokens (median {statistics.median(tokens):.0f}), "
          f"{len(PROMPTS)} prompts x {args.repeats}, medians")
    print(f"{'first token, streamed':<28}{1000 * ttft:9.0f} ms")
    print(f"{'whole reply, streamed':<28}{1000 * streamed:9.0f} ms")
    print(f"{'whole reply, not streamed':<28}{1000 * full:9.0f} ms")
    print(f"{'same, in a second thread':<28}{1000 * in_thread:9.0f} ms")
    print(f"{'ratio first / whole':<28}{ratio:9.3f}    (target <= {TARGET})")
    print(json.dumps({"benchmark": "stream_latency", "model": args.model, "first_token_ms": round(1000 * ttft, 1),
                      "streamed_whole_ms": round(1000 * streamed, 1), "whole_ms": round(1000 * full, 1),
                      "whole_in_second_thread_ms": round(1000 * in_thread, 1),
                      "ratio": round(ratio, 4), "target_ratio": TARGET, "target": "<=", "pass": ratio <= TARGET}))


if __name__ == "__main__":
    main()

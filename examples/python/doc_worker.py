"""A worker for `doc.summarise` jobs, your own kind: an extractive summary of a text document,
with progress reported as it goes. Run Sentinel (bash scripts/run.sh), then:

    pip install ./clients/python
    SENTINEL_API_KEY=sk_... python examples/python/doc_worker.py

and submit a job (the job's events show the progress; its result is the summary):

    curl -s -X POST localhost:8080/v1/jobs -H "Authorization: Bearer $SENTINEL_API_KEY" \
         -H 'Content-Type: application/json' \
         -d '{"kind": "doc.summarise", "input": {"text": "…", "sentences": 2}}'
"""

import logging
import os
import re
from collections import Counter

from sentinel_sdk import Fatal, Worker

logging.basicConfig(level=logging.INFO)
worker = Worker(
    os.environ.get("SENTINEL_URL", "http://127.0.0.1:8080"),
    os.environ["SENTINEL_API_KEY"],
    concurrency=int(os.environ.get("CONCURRENCY", "4")),
)


@worker.handler("doc.summarise")
def summarise(job):
    text = job.input.get("text") if isinstance(job.input, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise Fatal("input.text must be a non-empty string")  # retrying cannot help
    wanted = int(job.input.get("sentences", 3))
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
    words = Counter(w for w in re.findall(r"[a-z']+", text.lower()) if len(w) > 3)
    scored = []
    for n, sentence in enumerate(sentences):
        if job.cancel_requested:
            raise RuntimeError("canceled")  # the job ends canceled
        score = sum(words[w] for w in re.findall(r"[a-z']+", sentence.lower()))
        scored.append((score, n, sentence))
        if n % 50 == 0:
            job.progress({"sentences_read": n + 1, "of": len(sentences)})
    best = sorted(sorted(scored, reverse=True)[:wanted], key=lambda item: item[1])
    return {"summary": " ".join(sentence for _, _, sentence in best), "sentences": len(sentences)}


if __name__ == "__main__":
    worker.run()

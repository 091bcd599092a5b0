"""Parallel scans: every segment of a scan read at once on a thread pool.

Each worker scans one segment (``Segment``/``TotalSegments``) and hands its pages over a
bounded queue, so memory stays flat however large the table: at most two pages per worker
wait to be consumed. Items are turned into objects (and signals sent) in the consuming
thread. Stopping early (``break``, ``first()``) stops the workers after their current page.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamodel.search import Search

__all__ = ["parallel_pages"]

_DONE = object()


def parallel_pages(
    search: Search, workers: int, *, count: bool = False
) -> Iterator[dict[str, Any]]:
    """Pages of all ``workers`` segments of ``search``, in the order they arrive."""
    pages: queue.Queue[Any] = queue.Queue(maxsize=2 * workers)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                pages.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    worker_threads: set[int] = set()

    def scan(segment: int) -> None:
        worker_threads.add(threading.get_ident())
        try:
            for page in search.segment(segment, workers).pages(count=count):
                if not put(page):
                    return
        except BaseException as error:  # handed to the consumer, which re-raises it
            put(error)
        finally:
            put(_DONE)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="streamodel-scan")
    try:
        for segment in range(workers):
            pool.submit(scan, segment)
        running = workers
        while running:
            item = pages.get()
            if item is _DONE:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        stop.set()
        # An abandoned generator is closed wherever the garbage collector runs, which can be
        # one of this pool's threads: a thread cannot wait for itself. The workers stop by
        # themselves after their current page either way.
        own_thread = threading.get_ident() in worker_threads
        pool.shutdown(wait=not own_thread, cancel_futures=True)

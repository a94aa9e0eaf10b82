"""``CassandraStore``: the ``Store`` contract on Apache Cassandra (3.0+; developed on 5.0).

Nothing connects at import time: ``await CassandraStore.connect(settings)`` builds the driver
``Cluster`` (in a thread, so the event loop never blocks) and ``await store.migrate()`` (or
``fanout migrate``) creates the keyspace and the tables::

    timeline   (feed, ts, activity_id) -> activity columns   one partition per feed, newest first
    activities (activity_id)           -> activity, removed, to_feeds  the registry
    followers  (followee, follower)    -> following, active_until, unfollowed_at
    following  (follower, followee)    -> following, decided_at, decided_in
    users      (user)                  -> last_active
    pulled_accounts (shard, account)            -> since, leaving  hybrid fanout (``pulled``)
    delivery_plans  (activity_id, op, priority) -> chunks, feeds   delivery tracing (``tracing``)
    delivery_chunks (activity_id, op, chunk)    -> priority, feeds, landed
    notification_marks (feed, group_id) -> seen, read     max-wins watermarks (fanout.cassandra.marks)

Semantics are the memory twin's (``fanout.memory``): every cell is written ``USING TIMESTAMP``
the write timestamp the core chose, so the newest write wins and a delete wins a tie, whatever
order the writes arrive in. How each operation maps onto that:

* timeline insert/delete: ``INSERT ... USING TIMESTAMP write_ts`` / ``DELETE ... USING TIMESTAMP
  write_ts`` of the row ``(feed, ts, activity_id)``. Null ``target``/``extra`` are sent unset, so
  an insert never writes cell tombstones. ``extra`` is JSON text (msgspec), never pickle.
* follow edges: ``following = true`` at the edge timestamp the core derived (``fanout.graph``); an
  unfollow writes a tombstone in that cell at its timestamp (a tombstone wins a tie, as in the
  memory store; a ``false`` value would lose it). ``following.decided_at`` holds the timestamp of
  the newest decision (value == write timestamp, so max-wins), readable after an unfollow too, where
  the tombstone has no write time to read; ``follow_edge`` reads it (``WRITETIME(following)`` for
  edges written before the column existed; ``migrate`` adds it to an older keyspace).
  ``decided_in``, written with it, is 1 + the partition of ``follows`` whose record decided the
  edge (``Edge.source``; 0 when no record did: the eager mode, a library call; ``rows.decided_in``).
  ``followers.unfollowed_at``, written with an unfollow's tombstone (its TTL the chunk topics' retention),
  is that unfollow's timestamp: a writer asks which followers of its chunks have the edge off now
  (``Store.unfollowed``: ``follower IN ?``, 100 a query, ``unfollows``) and deletes their rows at
  the unfollow's timestamp.
* ``active_until`` and ``last_active`` only ever grow: they are written with the value itself as
  the write timestamp, so last-write-wins *is* max-wins, with no read-modify-write.
* ``trim`` reads the feed's keys and write times newest first (``WRITETIME(actor)``: every insert
  sets ``actor``), skips the newest ``max_length`` and deletes the first row past them and every
  older row with one range delete (``(ts, activity_id) <= (?, ?)``) at that row's activity time,
  which is the write time of every plain add in the range; a row of the range written above it
  (a follow copy) is deleted at its own write time (UNLOGGED single-partition batches, ``TRIM_PAGE``
  rows read a page; pages after the range delete meet only such rows, once it reached the replica
  that serves them: before, the others come back too and are left to it). So a replayed write of a
  trimmed entry (same or lower timestamp) stays deleted - a delete wins a tie - while a newer
  write lands: a re-follow copy or a rebuild at a higher follow-band timestamp refills a feed that
  shrank. An entry of the range arriving after the trim at its activity time stays off; a follow
  copy lands until the next trim. The memory twin follows the same rule (``MemoryStore``'s floor).
  Cost: one range tombstone a trim, the newer covering the older, instead of a row tombstone per
  trimmed row that every later trim and every read past the live rows met until compaction purged
  it (Cassandra fails a read at 100,000 of them: a feed trimmed that often within
  ``gc_grace_seconds`` could not be trimmed or read to its end). Follow copies trimmed still cost a
  row tombstone each, so a follow writes only the copies the follower's feed keeps
  (``fanout.graph``): each copy written and later pushed out by newer ones is a tombstone, far
  fewer than every copy once the feed is full.
* Tombstones (removes at ``REMOVED_WRITE_TS``, unfollows, trims) are purged after
  ``gc_grace_seconds`` (10 days by default): a replay of an add older than that can resurrect a
  removed entry, unless the registry (``activities.removed``) stops it first, as ``Fanout`` does.
* ``settings.cassandra_ttl_seconds > 0`` adds ``USING TTL`` to timeline inserts and registry
  writes (counted from the write, not from the activity time).

Writes go through prepared, idempotent statements with at most ``settings.max_in_flight``
requests in flight per store (an ``asyncio.Semaphore`` around ``execute_async``; the driver's
callbacks reach the loop through ``call_soon_threadsafe``, one wake-up per burst). Failures
surface as ``StoreError``; timeouts, unavailability and lost connections are ``retriable``.

Write strategies (``write_mode``): ``"concurrent"`` sends one single-row statement per write;
``"partition_batch"`` sends an UNLOGGED batch per feed partition holding several writes of the
call (at most 100 rows / ~16 KiB each) and single statements otherwise.
Measured (``apply`` of 20,000 timeline inserts, one local Cassandra 5.0.7 node on the same
2-CPU box, libev reactor, 128 in flight, modes interleaved, median of 3; two sessions on a box
shared with other benchmarks, hence the spread):

    rows spread over      concurrent            partition_batch
    200 feeds (100 each)  3,100 / 5,400 rows/s  37,000 / 58,700 rows/s  (~11x)
    20,000 feeds (1 each) 2,200 / 5,100 rows/s   1,600 / 3,900 rows/s  (same path: noise)

So ``partition_batch`` is much faster when a call carries several rows per feed (follow copies,
imports, replays, writer batches holding several chunks of one author) and takes the same path
otherwise: the driver is CPU-bound per request, and a same-partition batch is one request and
one mutation. A single fanout chunk (one activity into 100 feeds) has one row per feed.

``"replica_batch"`` (the default) pays one request per ~40 rows whatever the spread: the rows of
a call grouped by replica set (the token map; one node: all rows), each feed's rows together,
cut at ``REPLICA_BATCH_ROWS`` rows / ``REPLICA_BATCH_MAX_BYTES``, at most ``ROWS_IN_FLIGHT`` rows
of a call in flight (256 x 40-row batches timed out on the node). The node's config
(services/cassandra/cassandra.yaml.in, every node of every size) raises
``batch_size_warn_threshold`` and ``unlogged_batch_across_partitions_warn_threshold`` above those
caps, so no batch logs a WARN. Measured by ``benchmarks/writer_path.py`` (3 calls of 100 chunks
x 100 feeds drawn from 20,000, modes interleaved, median of 3, on a box at load 16-27, so only
the ratios mean much): concurrent 271 rows/s, 434 us client CPU/row; partition_batch 510 rows/s,
262 us; replica_batch 2,787 rows/s, 54 us.

A batch's rows after the first are not bound one by one (``binding``): ``PreparedStatement.bind``
builds a ``BoundStatement`` and a ``ColDesc`` per value; the rows are serialized by the driver's
own column types instead (the same bytes, checked against ``bind``). ``benchmarks/bind_rate.py``
(20,000 rows in 40-row batches, no server): 16.6 us of CPU a row the driver's way, 6.9 us this
way. In ``make bench`` case 3 the writers' CPU per pass fell from 5.1-5.4 to 3.9-4.1 s (2 rounds).

The modules, each one concept (imports point down this list, never up)::

    store       CassandraStore: connect, migrate, close, and the Store methods
    marks       the notification marks (MarkStore), a mixin of CassandraStore
    statements  every prepared CQL statement of a keyspace
    batching    timeline writes as bound statements, per-feed and per-replica-set UNLOGGED batches (pure)
    binding     a batch's rows serialized by the driver's column types, without a BoundStatement each
    bridge      driver requests awaited from asyncio: bounded in flight, paging, run_all
    routing     the execution profile: token-aware routing, write/read consistency, requests per node
    errors      driver exceptions as StoreError(retriable=...)
    schema      the keyspace and table DDL, keyspace name checks
    rows        an Activity as columns and back (extra as JSON)
    tracing     the delivery tracing tables (a mixin of CassandraStore)
    pulled      the pulled accounts of hybrid fanout (a mixin of CassandraStore)
"""

from . import errors as _errors
from .batching import BATCH_MAX_BYTES, BATCH_MAX_STATEMENTS, WRITE_MODES
from .store import TRIM_PAGE, CassandraStore, migrate

__all__ = ["BATCH_MAX_BYTES", "BATCH_MAX_STATEMENTS", "TRIM_PAGE", "WRITE_MODES", "CassandraStore", "migrate"]

_store_error = _errors.store_error  # tests/contract/test_store_contract.py imports it from here

"""The ingest worker: MQTT in, TimescaleDB out, acknowledgement after commit.

Threads: paho's network thread only queues messages; the decoder thread
turns them into batches; the writer (the caller's thread) commits each batch
and then acknowledges its messages. QoS 1, a fixed client id and a session
that outlives the process mean that whatever was not committed comes again.
So when a thread dies of an unexpected error, the worker ends at once with
that error (a non-zero exit for its supervisor) rather than hold messages
it will never acknowledge.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time

import numpy as np
import psycopg
from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agri import mqtt
from agri.db import connect
from agri.devices import commands, receipts
from agri.devices.topics import (
    FORMER_INGEST_FILTERS,
    INGEST_FILTERS,
    commands_topic,
    shared,
)
from agri.ingest import maintenance
from agri.ingest.batch import Batch
from agri.ingest.directory import Directory
from agri.ingest.pipeline import Pipeline
from agri.ingest.stats import Stats
from agri.ingest.validate import TimeLimits
from agri.ingest.writer import Writer, Written
from agri.settings import Settings

logger = logging.getLogger(__name__)

SYS_TOPICS = {
    "$SYS/broker/publish/messages/dropped": "broker_dropped_messages",
    "$SYS/broker/store/messages/count": "broker_stored_messages",
}
WRITE_QUEUE_BATCHES = 2  # batches decoded ahead of the one being written
POLL_S = 0.05
IDLE_POLL_S = 0.1  # how often a retiring worker checks whether anything arrived
IDLE_SAVE_S = 1.0  # with nothing to write, counters are still saved this often
DISCONNECT_WAIT_S = 5.0
PUBLISH_WAIT_S = 5.0  # for the broker's PUBACK of a command
# Age of a reading when its batch commits (commit time - measurement time):
# histogram bucket upper bounds, seconds.
AGE_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0,
               10.0, 30.0, 60.0, 300.0, 3600.0, 86400.0, float("inf"))


class WorkerFailed(RuntimeError):
    """A thread of the ingest worker died; the worker stops so that its
    supervisor restarts it (unacknowledged messages come again)."""


class _Died:
    """Put in the outbox by a thread that died, with its error."""

    def __init__(self, thread: str, error: BaseException) -> None:
        self.thread = thread
        self.error = error


class IngestService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.worker = settings.ingest_worker
        self.db_url = settings.db_url("ingest")
        self.stats = Stats(self.worker)
        self.age_counts = np.zeros(len(AGE_BUCKETS), dtype=np.int64)
        self.command_log = commands.CommandLog(lambda: connect(self.db_url, autocommit=True))
        self.pipeline = Pipeline(
            directory=Directory(lambda: connect(self.db_url)),
            limits=TimeLimits.of(settings), max_payload=settings.max_payload_bytes,
            command_log=self.command_log)
        self.sender = commands.Sender(lambda: connect(self.db_url), self._publish)
        self._refused_publishes: set[int] = set()
        self.writer = Writer(self.db_url)
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.outbox: queue.Queue[Batch | _Died | None] = queue.Queue(WRITE_QUEUE_BATCHES)
        self.arrived = 0  # messages handed over by the network thread (moves at once)
        self.settled = 0  # ... of which committed and acknowledged
        self.drained = False  # retiring: everything the session held is committed
        self.connection = 0  # bumped at every (re)connect: acks of older ones are stale
        self.stopping = threading.Event()
        self.disconnected = threading.Event()
        self.retiring = False
        self._broker_dropped: float | None = None
        self.client = self._client()
        self._stats_conn = None
        self._maintained_at = -maintenance.EVERY_S

    # -- network thread --------------------------------------------------
    def _client(self) -> Client:
        client = mqtt.make_client(self.settings.broker_url("ingest"),
                                  client_id=f"agri-ingest-{self.worker}", manual_ack=True)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        return client

    def _on_publish(self, client, userdata, mid, reason, properties) -> None:
        if reason.is_failure:
            logger.error("broker refused a command (%s): does agri-ingest lack publish rights? "
                         "run `agri broker sync`", reason)
            self._refused_publishes.add(mid)

    def _publish(self, topic: str, payload: bytes, expires_in_s: float) -> bool:
        """Publish a command, QoS 1, expiring at the broker with the command;
        True once the broker took it (PUBACK)."""
        props = Properties(PacketTypes.PUBLISH)
        props.MessageExpiryInterval = max(1, math.ceil(expires_in_s))
        info = self.client.publish(topic, payload, qos=1, properties=props)
        try:
            info.wait_for_publish(PUBLISH_WAIT_S)
        except (RuntimeError, ValueError):
            return False
        return info.is_published() and not _take(self._refused_publishes, info.mid)

    def _on_subscribe(self, client, userdata, mid, reasons, properties) -> None:
        failed = [r for r in reasons if r.is_failure]
        if failed:
            logger.error("broker refused subscriptions: %s", failed)
        else:
            logger.info("subscribed (%d filters)", len(reasons))

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            logger.error("broker refused the connection: %s", reason)
            return
        self.connection += 1
        logger.info("connected to the broker (session present: %s)", flags.session_present)
        if self.retiring:
            # Leave the shared groups first, so nothing new is assigned to this
            # session; what it already holds is delivered and drained.
            client.unsubscribe([shared(f) for f in INGEST_FILTERS])
            return
        client.unsubscribe([shared(f) for f in FORMER_INGEST_FILTERS])
        client.subscribe([(shared(f), 1) for f in INGEST_FILTERS] +
                         [(t, 0) for t in SYS_TOPICS])

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:
        if self.stopping.is_set():
            self.disconnected.set()
        else:
            logger.warning("disconnected from the broker (%s); reconnecting", reason)

    def _note_dropped(self, total: float) -> None:
        """The broker's count of messages it dropped since it started: any rise
        is data lost before ingest could see it (a session's queue was full)."""
        last = self._broker_dropped
        self._broker_dropped = total
        if total > (last or 0):
            logger.warning("broker dropped %d messages (%d in all since it started): a "
                           "session's queue was full (max_queued_messages); those readings "
                           "are lost", total - (last or 0), total)

    def _on_message(self, client, userdata, msg: MQTTMessage) -> None:
        gauge = SYS_TOPICS.get(msg.topic)
        if gauge is not None:
            try:
                value = float(msg.payload)
            except ValueError:
                return
            if gauge == "broker_dropped_messages":
                self._note_dropped(value)
            self.stats.set(**{gauge: value})
            return
        if self.stopping.is_set():
            return  # not acknowledged: the broker keeps it for the next session
        self.arrived += 1
        self.inbox.put((msg.topic, msg.payload, msg.mid, msg.qos, self.connection, time.time()))

    # -- decoder thread --------------------------------------------------
    def _decode_thread(self) -> None:
        try:
            self._decode_loop()
        except BaseException as exc:  # noqa: BLE001 - handed to the writer, which stops
            logger.critical("decoder thread died: %s", exc, exc_info=True)
            self.outbox.put(_Died("decoder", exc))

    def _decode_loop(self) -> None:
        max_readings = self.settings.ingest_batch_readings
        max_wait = self.settings.ingest_batch_seconds
        batch, deadline = Batch(), 0.0
        while True:
            try:
                item = self.inbox.get(timeout=POLL_S)
            except queue.Empty:
                item = None
            if item is not None:
                topic, payload, mid, qos, conn_no, received = item
                if not batch.messages:
                    batch.first_received = received
                    deadline = time.monotonic() + max_wait
                self.pipeline.handle(topic, payload, received, batch)
                batch.acks.append((mid, qos, conn_no))
            full = len(batch.rows) >= max_readings or batch.messages >= max_readings
            stop = item is None and self.stopping.is_set()
            if batch.messages and (full or stop or time.monotonic() >= deadline):
                self.outbox.put(batch)
                batch = Batch()
            if stop:
                self.outbox.put(None)
                return

    # -- command sender thread -------------------------------------------
    def _send_thread(self) -> None:
        try:
            self.sender.run(self.stopping)
        except BaseException as exc:  # noqa: BLE001 - handed to the writer, which stops
            logger.critical("command sender thread died: %s", exc, exc_info=True)
            self.outbox.put(_Died("command sender", exc))

    # -- writer (caller's thread) ------------------------------------------
    def _commit(self, batch: Batch) -> None:
        written = self.writer.write(batch)
        self.settled += batch.messages
        self._count(batch, written)
        if batch.receipts:
            self._answer_receipts(batch.receipts)
        if written.rejected or written.conflict:
            logger.info("batch: %d stored, %d duplicate, %d conflict, %d rejected",
                        written.stored, written.duplicate, written.conflict, written.rejected)
        self.stats.maybe_save(self._stats_connection, self._drop_stats_connection)

    def _count(self, batch: Batch, written: Written) -> None:
        committed = time.time()
        current = self.connection
        for mid, qos, conn_no in batch.acks:
            if qos and conn_no == current:
                self.client.ack(mid, qos)
        if batch.rows:
            ages = committed - np.fromiter((r[2] for r in batch.rows), float, len(batch.rows))
            self.age_counts += np.bincount(np.searchsorted(AGE_BUCKETS, ages),
                                           minlength=len(AGE_BUCKETS))[:len(AGE_BUCKETS)]
        self.stats.add(messages_received=batch.messages, readings_stored=written.stored,
                       readings_duplicate=written.duplicate, readings_conflict=written.conflict,
                       rejects=written.rejected, batches_committed=1,
                       events_stored=written.events_stored,
                       events_duplicate=written.events_duplicate,
                       messages_refused=written.refused)
        self.stats.set(lag_seconds=committed - batch.first_received,
                       queue_depth=self.inbox.qsize(),
                       pending_messages=self.arrived - self.settled)
        self.stats.values["age_histogram"] = self.age_counts.tolist()  # type: ignore[assignment]

    def _answer_receipts(self, asked: list[tuple[str, receipts.Request]]) -> None:
        """Tell each asking device which of its asked times are stored (after the
        commit of the batch that held the request; devices/receipts.py)."""
        try:
            conn = self._stats_connection()
            for device_id, request in asked:
                first, last = receipts.span(request)
                stored = conn.execute(
                    "SELECT DISTINCT (extract(epoch FROM time) * 1000000)::bigint "
                    "FROM readings WHERE device_id = %s AND time BETWEEN %s AND %s",
                    (device_id, first, last)).fetchall()
                conn.commit()
                props = Properties(PacketTypes.PUBLISH)
                props.MessageExpiryInterval = receipts.EXPIRES_S
                # Not waited for: an answer that does not arrive is asked for again.
                self.client.publish(commands_topic(device_id),
                                    receipts.answer(request, (t for (t,) in stored)),
                                    qos=1, properties=props)
        except psycopg.Error as exc:
            logger.warning("could not answer %d receipt requests (the devices ask again): %s",
                           len(asked), exc)
            self._drop_stats_connection()

    def _maybe_maintain(self) -> None:
        keep = self.settings.raw_retention_days
        if keep is None or time.monotonic() - self._maintained_at < maintenance.EVERY_S:
            return
        self._maintained_at = time.monotonic()
        try:
            maintenance.drop_old_readings(self._stats_connection(), keep_days=keep)
        except psycopg.Error as exc:
            logger.warning("retention job failed: %s", exc)
            self._drop_stats_connection()

    def _stats_connection(self):
        """The connection for counters and maintenance; after any error it is
        dropped (``_drop_stats_connection``) and the next call opens another."""
        if self._stats_conn is None or self._stats_conn.closed:
            self._stats_conn = connect(self.db_url)
        return self._stats_conn

    def _drop_stats_connection(self) -> None:
        if self._stats_conn is not None:
            self._stats_conn.close()
            self._stats_conn = None

    def run(self, *, retire_after_idle_s: float | None = None) -> None:
        """Consume until ``stop()``; then commit what was received (the batch
        being built too) and disconnect.

        With ``retire_after_idle_s``, drain the worker's session instead: stop
        once everything received is committed and nothing arrived for that
        long, and end the session at the broker so that the shared
        subscription no longer holds messages for it. Stopped before that, a
        retiring worker keeps its session.
        """
        self.retiring = retire_after_idle_s is not None
        mqtt.connect(self.client, clean_start=False, blocking=False,
                     properties=mqtt.connect_properties(
                         session_expiry_s=self.settings.ingest_session_expiry_s,
                         receive_maximum=self.settings.ingest_receive_maximum))
        self.stats.resume(self._stats_connection())
        if "age_histogram" in self.stats.values:
            self.age_counts[:] = self.stats.values["age_histogram"]
        self.stats.set(retired=0)
        self.client.loop_start()
        decoder = threading.Thread(target=self._decode_thread, name="ingest-decode", daemon=True)
        decoder.start()
        logger.info("ingest worker %s running", self.worker)
        if retire_after_idle_s is not None:
            threading.Thread(target=self._stop_when_idle, args=(retire_after_idle_s,),
                             daemon=True).start()
        else:
            threading.Thread(target=self._send_thread, name="ingest-commands",
                             daemon=True).start()
        try:
            while True:
                try:
                    batch = self.outbox.get(timeout=IDLE_SAVE_S)
                except queue.Empty:
                    self.stats.set(queue_depth=self.inbox.qsize(),
                                   pending_messages=self.arrived - self.settled)
                    self.stats.maybe_save(self._stats_connection, self._drop_stats_connection)
                    self._maybe_maintain()
                    continue
                if batch is None:
                    break
                if isinstance(batch, _Died):
                    raise WorkerFailed(f"the {batch.thread} thread died: {batch.error!r}; "
                                       f"stopping so that the worker is restarted") \
                        from batch.error
                self._commit(batch)
        except BaseException:
            failed = True
            raise
        else:
            failed = False
        finally:
            props = None
            if self.drained and not failed:
                props = Properties(PacketTypes.DISCONNECT)
                props.SessionExpiryInterval = 0
                self.stats.set(retired=1)
                logger.info("worker %s retired: its session ends now", self.worker)
            elif self.retiring:
                logger.warning("worker %s stopped before its session was drained: the session "
                               "is kept; retire it again", self.worker)
            self.stopping.set()
            self.client.disconnect(properties=props)
            # The acknowledgements and the DISCONNECT must reach the broker
            # before the network thread ends.
            if not self.disconnected.wait(DISCONNECT_WAIT_S):
                logger.warning("no clean disconnect from the broker")
            self.client.loop_stop()
            self.stats.maybe_save(self._stats_connection, self._drop_stats_connection,
                                  force=True)
            self.writer.close()
            self.command_log.close()
            if self._stats_conn is not None:
                self._stats_conn.close()
            logger.info("ingest worker %s stopped: %s", self.worker, self.stats.snapshot())

    def _stop_when_idle(self, idle_s: float) -> None:
        """Stop once everything that arrived is committed and nothing more
        arrived for ``idle_s``. While a batch waits (for its deadline or for a
        stalled database) the broker may be holding back the rest of the
        session behind its window: that is not idle."""
        seen, quiet_since = -1, time.monotonic()
        while not self.stopping.wait(IDLE_POLL_S):
            arrived = self.arrived
            if arrived != seen or arrived != self.settled or self.connection == 0:
                seen, quiet_since = arrived, time.monotonic()
            elif time.monotonic() - quiet_since >= idle_s:
                self.drained = True
                self.stop()

    def stop(self) -> None:
        """Stop taking messages; what was received is committed and acknowledged."""
        self.stopping.set()


def _take(mids: set[int], mid: int) -> bool:
    """Whether ``mid`` was in ``mids`` (removed if so)."""
    try:
        mids.remove(mid)
    except KeyError:
        return False
    return True

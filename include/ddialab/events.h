/*
 * ddialab events: the event-log lab. A single-node broker that speaks the Kafka wire protocol,
 * so that kcat, librdkafka and kafkajs work against it unchanged (docs/events.md).
 *
 *   ddialab events broker [--listen 127.0.0.1:9092] [--data-dir ./data/events] [...]
 */
#ifndef DDIALAB_EVENTS_H
#define DDIALAB_EVENTS_H

/* Entry point for "ddialab events ..."; argv[0] is "events". Returns the process exit code. */
int dl_events_main(int argc, char **argv);

#endif

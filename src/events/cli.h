/* The `ddialab events` verbs that are Kafka clients (cli.c, on librdkafka). */
#ifndef DDIALAB_EVENTS_CLI_H
#define DDIALAB_EVENTS_CLI_H

int dl_events_produce_main(int argc, char **argv);
int dl_events_consume_main(int argc, char **argv);
int dl_events_topics_main(int argc, char **argv);
int dl_events_groups_main(int argc, char **argv);

#endif

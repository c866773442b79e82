# The worker image: the `worker` binary (producer, consumer, final read). Built by
# `harness images build`, which supplies the build context (this file and `worker`).
#
# BASE needs a glibc at least as new as the machine the binary was built on (librdkafka is
# linked in statically; nothing else is needed).
ARG BASE=kmh-base:bookworm
FROM ${BASE}
COPY worker /usr/local/bin/worker

# The node image: a JRE, the fault tools (iptables, tc) and the Kafka/ZooKeeper jars of
# the harness's distribution (docker/kafka-dist.pom.xml). Built by `harness images build`,
# which supplies the build context (this file and libs/).
#
# BASE: a stock JRE image where a registry is reachable (e.g. eclipse-temurin:17-jre), or
# the base `harness images build` makes with debootstrap and `docker import` when none is.
ARG BASE=kmh-base:bookworm
FROM ${BASE}
# a stock JRE image lacks the fault tools; the debootstrap base has them already
RUN command -v iptables >/dev/null && command -v tc >/dev/null \
 || (apt-get update && apt-get install -y --no-install-recommends iptables iproute2 \
     && rm -rf /var/lib/apt/lists/*)
COPY libs/ /opt/kafka/libs/

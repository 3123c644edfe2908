# The EGO image: every service binary, with the Swift runtime linked
# statically. Built in CI elsewhere (no container engine on the dev machines).
# libcurl: the notifier's HTTP client (FoundationNetworking) for ntfy, Telegram
# and webhooks.
FROM docker.io/library/swift:6.1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      libnats-dev libpq-dev libprotobuf-c-dev pkg-config && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN swift build -c release --static-swift-stdlib \
      --product ingest --product command-router --product notifier --product twin-service
RUN mkdir /out && for p in ingest command-router notifier twin-service; do \
      cp "$(swift build -c release --show-bin-path)/$p" /out/; done

FROM docker.io/library/debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      libnats3.4 libpq5 libprotobuf-c1 libcurl4 ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532

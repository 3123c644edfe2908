# The EGO image: every service binary, with the Swift runtime linked
# statically. Built in CI elsewhere (no container engine on the dev machines).
# libcurl: the notifier's HTTP client (FoundationNetworking) for ntfy, Telegram
# and webhooks. qrencode and libjs-dygraphs: the console's TOTP QR codes and
# charts.
# 6.3: hummingbird-auth needs tools 6.2 or later.
FROM docker.io/library/swift:6.3-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      libnats-dev libpq-dev libprotobuf-c-dev pkg-config && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# One product per `swift build` (a second --product replaces the first).
RUN for p in ingest command-router notifier twin-service console mirrorctl; do \
      swift build -c release --static-swift-stdlib --product "$p" || exit 1; done
RUN mkdir -p /out/bin /out/share && for p in ingest command-router notifier twin-service console mirrorctl; do \
      cp "$(swift build -c release --show-bin-path)/$p" /out/bin/; done && \
    cp -r Sources/ConsoleCore/Public /out/share/console

FROM docker.io/library/debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      libnats3.4 libpq5 libprotobuf-c1 libcurl4 ca-certificates qrencode libjs-dygraphs libjs-three libjs-term.js \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/bin/ /usr/local/bin/
# The console's front end (console.static-dir); its browser libraries come
# from Debian's libjs-* packages above, in /usr/share/javascript.
COPY --from=build /out/share/console/ /usr/share/mirror-stage/console/
USER 65532:65532

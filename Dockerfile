# syntax=docker/dockerfile:1
# weauth: build with the Rust toolchain, run on a slim Debian with only libpq and CA roots.
#   docker build -t weauth .
#   docker run --rm -p 9999:9999 -e DATABASE_URL=postgres://... -e GOTRUE_JWT_SECRET=... weauth
# The image's default command is `weauth serve` (migrate, then serve on 0.0.0.0:9999);
# `docker run weauth migrate` also works. The image also holds the emulator (development only):
# `docker run -p 9911:9911 --entrypoint weauth-emulator weauth --host 0.0.0.0`.

FROM rust:1-bookworm AS builder
# diesel links against libpq (already in the image; installed explicitly in case that changes).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The whole context (see .dockerignore), so that every target Cargo.toml names exists; the
# migrations/ directory is compiled into the binary (diesel's embed_migrations!).
COPY . .
# Cache mounts keep the crate registry and build artefacts between builds; the binaries are
# copied out because the target directory is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p weauth -p weauth-emulator \
    && cp target/release/weauth target/release/weauth-emulator /usr/local/bin/

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq5 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system weauth \
    && useradd --system --gid weauth --home-dir /app --no-create-home --shell /usr/sbin/nologin weauth \
    && mkdir /app && chown weauth:weauth /app
COPY --from=builder /usr/local/bin/weauth /usr/local/bin/weauth-emulator /usr/local/bin/
WORKDIR /app
USER weauth
# Listen on every interface inside the container (this is also weauth's default).
ENV GOTRUE_API_HOST=0.0.0.0 \
    PORT=9999
EXPOSE 9999
ENTRYPOINT ["weauth"]
CMD ["serve"]

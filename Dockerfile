# syntax=docker/dockerfile:1
# weauth: build with the Rust toolchain, run on a slim Debian with only libpq and CA roots.
#   docker build -t weauth .
#   docker run --rm -p 9999:9999 -e DATABASE_URL=postgres://... -e GOTRUE_JWT_SECRET=... weauth
# The image's default command is `weauth serve` (migrate, then serve on 0.0.0.0:9999);
# `docker run weauth migrate` and `docker run weauth wechat-emulator --host 0.0.0.0` also work.

FROM rust:1-bookworm AS builder
# diesel links against libpq (already in the image; installed explicitly in case that changes).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The whole context (see .dockerignore), so that every target Cargo.toml names exists; the
# migrations/ directory is compiled into the binary (diesel's embed_migrations!).
COPY . .
# Cache mounts keep the crate registry and build artefacts between builds; the binary is
# copied out because the target directory is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && cp target/release/weauth /usr/local/bin/weauth

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq5 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system weauth \
    && useradd --system --gid weauth --home-dir /app --no-create-home --shell /usr/sbin/nologin weauth \
    && mkdir /app && chown weauth:weauth /app
COPY --from=builder /usr/local/bin/weauth /usr/local/bin/weauth
WORKDIR /app
USER weauth
# Listen on every interface inside the container (this is also weauth's default).
ENV GOTRUE_API_HOST=0.0.0.0 \
    PORT=9999
EXPOSE 9999
ENTRYPOINT ["weauth"]
CMD ["serve"]

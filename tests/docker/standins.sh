#!/usr/bin/env bash
# Makes local stand-ins for the public base images that Dockerfile and docker-compose.yml
# name, tagged with exactly those names, for a Docker engine that cannot pull from a
# registry (this project's CI). The user-facing files are then built and run unmodified.
#
#   rust:<version>-slim-<suite>  debootstrap <suite> + gcc, libc6-dev, ca-certificates, and
#                                this machine's Rust toolchain where the official image has it
#   postgres:<major>             debootstrap trixie + Debian's postgresql-<major> + an
#                                entrypoint with the official image's environment contract
#
# Each stand-in carries the label schemagate.standin=<hash of its recipe>; one with the
# current hash is kept, so a second run costs nothing. An image of that name without the
# label (a real one, pulled from a registry) is used as it is. Needs root (debootstrap).
set -euo pipefail
cd "$(dirname "$0")/../.."
here=tests/docker
mirror=http://deb.debian.org/debian

rust_image=$(sed -n 's/^ARG RUST_IMAGE=//p' Dockerfile)
postgres_image=$(sed -n 's/^ *image: *\(postgres:[^ ]*\)$/\1/p' docker-compose.yml | sort -u)
if [[ ! $rust_image =~ ^rust:([0-9.]+)-slim-([a-z]+)$ ]]; then
  echo "standins: Dockerfile's RUST_IMAGE default is '$rust_image', expected rust:<version>-slim-<suite>" >&2
  exit 1
fi
rust_version=${BASH_REMATCH[1]} rust_suite=${BASH_REMATCH[2]}
if [[ ! $postgres_image =~ ^postgres:([0-9]+)$ ]]; then
  echo "standins: docker-compose.yml names '$postgres_image', expected one postgres:<major> image" >&2
  exit 1
fi
pg_major=${BASH_REMATCH[1]}
pg_suite=trixie # the Debian release that packages postgresql-17

# The stand-in carries this machine's toolchain, so it must be the version the tag names.
host_rust=$(rustc --version | cut -d' ' -f2)
if [[ $host_rust != "$rust_version" && $host_rust != "$rust_version".* ]]; then
  echo "standins: the Dockerfile builds with $rust_image but this machine's rustc is $host_rust;" >&2
  echo "standins: install that toolchain (rustup default $rust_version) or change RUST_IMAGE" >&2
  exit 1
fi

if ! command -v debootstrap >/dev/null; then
  echo "standins: installing debootstrap"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

label=schemagate.standin
hash_of() { cat "$@" | sha256sum | cut -c1-16; }
rust_hash=$(echo "$rust_image $host_rust $(rustup --version 2>/dev/null)" | hash_of "$here/standins.sh" /etc/ssl/certs/ca-certificates.crt -)
postgres_hash=$(echo "$postgres_image $pg_suite" | hash_of "$here/standins.sh" "$here"/postgres/* -)

# Whether IMAGE is already what we want: a stand-in of this recipe, or a real image.
is_current() {
  local found
  found=$(docker image inspect -f "{{index .Config.Labels \"$label\"}}" "$1" 2>/dev/null) || return 1
  case $found in
    "$2") echo "standins: $1 is up to date" ;;
    "" | "<no value>") echo "standins: $1 is a real image (no $label label): using it" ;;
    *) return 1 ;;
  esac
}

work=$(mktemp -d /var/tmp/schemagate-standins.XXXXXX)
trap 'rm -rf --one-file-system "$work"' EXIT

build_rust() {
  local root=$work/rust-root
  local toolchain=$root/usr/local/rustup/toolchains/$host_rust-x86_64-unknown-linux-gnu
  debootstrap --variant=minbase --include=ca-certificates,gcc,libc6-dev "$rust_suite" "$root" "$mirror"
  mkdir -p "$toolchain" "$root/usr/local/cargo/bin"
  # The toolchain without its 800 MB of HTML docs (the official image has none either).
  tar -C "$(rustc --print sysroot)" --exclude=./share/doc -c . | tar -C "$toolchain" -x
  cp "$(command -v rustup)" "$root/usr/local/cargo/bin/rustup"
  for proxy in cargo rustc rustdoc; do ln -s rustup "$root/usr/local/cargo/bin/$proxy"; done
  printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "minimal"\n' \
    "$host_rust-x86_64-unknown-linux-gnu" >"$root/usr/local/rustup/settings.toml"
  chmod -R a+w "$root/usr/local/rustup" "$root/usr/local/cargo"
  # HTTPS from here may pass a TLS-inspecting proxy whose CA only this machine trusts.
  # rustup and cargo get this machine's bundle through their variables; the system
  # bundle, which the Dockerfile copies into the image, stays Debian's own.
  cp /etc/ssl/certs/ca-certificates.crt "$root/usr/local/share/host-ca-bundle.crt"
  # The official image's environment, so the Dockerfile's `rustup` and `cargo` resolve alike.
  tar -C "$root" -c . | docker import \
    --change "ENV SSL_CERT_FILE=/usr/local/share/host-ca-bundle.crt" \
    --change "ENV CARGO_HTTP_CAINFO=/usr/local/share/host-ca-bundle.crt" \
    --change "ENV RUSTUP_HOME=/usr/local/rustup" \
    --change "ENV CARGO_HOME=/usr/local/cargo" \
    --change "ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV RUST_VERSION=$host_rust" \
    --change "LABEL $label=$rust_hash" \
    --change 'CMD ["bash"]' - "$rust_image"
}

build_postgres() {
  local base=schemagate-standin-debian:$pg_suite
  # The bare Debian base is kept as an image too: changing the entrypoint reuses it.
  if ! docker image inspect "$base" >/dev/null 2>&1; then
    debootstrap --variant=minbase "$pg_suite" "$work/pg-root" "$mirror"
    tar -C "$work/pg-root" -c . | docker import - "$base"
  fi
  docker build --build-arg BASE="$base" --build-arg PG_MAJOR="$pg_major" \
    --label "$label=$postgres_hash" -t "$postgres_image" "$here/postgres"
}

# Both at once: each spends most of its time waiting on the network or the disk.
pids=() names=()
for which in rust postgres; do
  image_var=${which}_image hash_var=${which}_hash
  is_current "${!image_var}" "${!hash_var}" && continue
  echo "standins: building ${!image_var} (log: $work/$which.log)"
  (
    start=$SECONDS
    "build_$which" >"$work/$which.log" 2>&1
    echo "standins: built ${!image_var} in $((SECONDS - start)) s"
  ) &
  pids+=($!) names+=("$which")
done
failed=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    echo "standins: building the ${names[$i]} stand-in failed; the end of its log:" >&2
    tail -n 40 "$work/${names[$i]}.log" >&2
    failed=1
  fi
done
exit "$failed"

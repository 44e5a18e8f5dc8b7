# berth's image, for users who build it themselves: `docker build -t berth .` (the build stage fetches
# crates from crates.io). The project builds the same image without network with scripts/image (buildah,
# from the binary cargo built); both lay out the same files with scripts/image-rootfs, and the image test
# (crates/berth/tests/e2e/image.rs) checks that the settings below are the ones scripts/image gives.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# No .git in the build context: the commit berth --version names comes from here.
ARG BERTH_GIT_COMMIT=unknown
ENV BERTH_GIT_COMMIT=${BERTH_GIT_COMMIT}
RUN cargo build --release --locked -p berth \
    && scripts/image-rootfs target/release/berth /rootfs

FROM scratch
# Everything root's but the data directory, which the user berth owns so a fresh volume is writable.
COPY --from=build /rootfs/ /
COPY --from=build --chown=65532:65532 /rootfs/var/lib/registry /var/lib/registry
USER 65532:65532
EXPOSE 5000/tcp
VOLUME /var/lib/registry
WORKDIR /var/lib/registry
ENTRYPOINT ["/usr/bin/berth"]
CMD ["serve"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 CMD ["/usr/bin/berth", "health"]
LABEL org.opencontainers.image.title="berth" \
      org.opencontainers.image.description="A private OCI container image registry, a drop-in for registry:2 and registry:3" \
      org.opencontainers.image.licenses="Apache-2.0"

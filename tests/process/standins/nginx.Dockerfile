# Stand-in for nginx:1.27-bookworm: Debian's nginx (1.22), in the foreground, stopped
# gracefully by SIGQUIT as the official image is.
ARG BASE
FROM $BASE
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      -o Dpkg::Options::=--force-unsafe-io nginx \
 && rm -rf /var/lib/apt/lists/*
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]

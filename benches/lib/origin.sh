# shellcheck shell=bash
# origin.sh - throwaway PKI, the nginx HTTPS origin and the python SSE origin.
# Needs: W (scratch dir), PKI, OUT, ORIGIN_PORT, STATUS_PORT, SSE_PORT, HERE (benches/).

# leaf NAME SAN: a P-256 leaf signed by the origin CA, at $PKI/NAME.{crt,key}
leaf() {
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$2" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA origin-ca.crt -CAkey origin-ca.key -CAcreateserial \
    -days 30 -out "$1.crt" -extfile "$1.ext" 2>/dev/null
}

ca() {  # ca NAME CN: a self-signed P-256 CA at NAME.{crt,key}
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=$2" -keyout "$1.key" -out "$1.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

make_pki() {
  mkdir -p "$PKI"
  (
    cd "$PKI"
    if [[ ! -s sse.crt ]]; then
      log "PKI: origin CA (origin.test, *.w5.test, sse.test leaves) and proxy CA, ECDSA P-256"
      ca origin-ca "bottle-bench origin CA"
      leaf origin origin.test
      leaf w5 '*.w5.test'
      leaf sse sse.test
      ca proxy-ca "bottle-bench proxy CA"
    fi
    cat proxy-ca.key proxy-ca.crt > proxy-ca.pem          # mitmproxy / squid format
    cat proxy-ca.crt origin-ca.crt > client-bundle.crt    # the client trusts both
    chmod 644 ./*.crt ./*.pem
  )
}

start_origin() {
  local d=$W/nginx
  mkdir -p "$d/tmp" "$W/www"; chmod 755 "$W" "$W/www"
  [[ $(stat -c %s "$W/www/big.bin" 2>/dev/null || echo 0) == 67108864 ]] ||
    head -c 64M /dev/urandom > "$W/www/big.bin"
  chmod 644 "$W/www/big.bin"
  local small echo_mod=/usr/lib/nginx/modules/ngx_http_echo_module.so upload
  small=$(printf 'bottle-bench small response %072d' 0 | head -c 99)
  # /upload must read the whole body before it answers (a bare `return 200` answers at the
  # first byte and discards the rest later, so the client's clock would stop too early).
  # echo_read_request_body (Debian's nginx-light ships the echo module) reads it; the body
  # goes to a temp file on tmpfs, truncated by nginx right after the request.
  if [[ -f $echo_mod ]]; then
    upload="client_max_body_size 0; client_body_buffer_size 1m; echo_read_request_body; echo ok;"
  else
    upload="client_max_body_size 0; return 200 \"ok\\n\";"
  fi
  cat > "$d/nginx.conf" <<EOF
$([[ -f $echo_mod ]] && echo "load_module $echo_mod;")
worker_processes 1;
worker_rlimit_nofile 65536;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path /dev/shm/bottle-bench-nginx-body;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:SSL:10m;
  server {
    listen 127.0.0.1:$ORIGIN_PORT ssl;
    server_name origin.test;
    ssl_certificate $PKI/origin.crt;
    ssl_certificate_key $PKI/origin.key;
    location = /small { default_type text/plain; return 200 "$small\n"; }
    location = /big   { default_type application/octet-stream; alias $W/www/big.bin; }
    location = /upload { default_type text/plain; $upload }
    location / { return 404; }
  }
  server {
    listen 127.0.0.1:$ORIGIN_PORT ssl;
    server_name *.w5.test;
    ssl_certificate $PKI/w5.crt;
    ssl_certificate_key $PKI/w5.key;
    location = /small { default_type text/plain; return 200 "$small\n"; }
    location / { return 404; }
  }
  server {
    listen 127.0.0.1:$STATUS_PORT;
    location = /status { stub_status; }
  }
}
EOF
  nginx -t -p "$d" -e "$d/error.log" -c "$d/nginx.conf" >"$d/test.log" 2>&1 || { cat "$d/test.log" >&2; return 1; }
  nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf" >"$d/stdout.log" 2>&1 &
  PIDS+=($!)
  echo "nginx -p $d -c $d/nginx.conf" > "$OUT/cmd-origin-nginx.txt"
  cp "$d/nginx.conf" "$OUT/origin-nginx.conf"
  wait_port "$ORIGIN_PORT" nginx $!
}

start_sse_origin() {
  local cmd=(python3 "$HERE/lib/sse_origin.py" --listen "127.0.0.1:$SSE_PORT"
    --cert "$PKI/sse.crt" --key "$PKI/sse.key" --events "$SSE_EVENTS" --interval-ms "$SSE_INTERVAL_MS")
  echo "${cmd[*]}" > "$OUT/cmd-origin-sse.txt"
  "${cmd[@]}" >"$W/sse-origin.log" 2>&1 &
  PIDS+=($!)
  wait_port "$SSE_PORT" sse-origin $!
}

# A DNS responder on 127.0.0.1:53 answering from the namespace's /etc/hosts (resolv.conf names
# it). pipelock and egress resolve through DNS (hickory): without it they time out on every
# name not given with --resolve. Refuses to start if something else holds port 53.
start_dns() {
  if ss -Hlun 'sport = :53' | grep -q .; then
    die "something already listens on UDP port 53; the namespace needs it for its own DNS"
  fi
  local cmd=(python3 "$HERE/lib/dns.py" --listen 127.0.0.1:53 --hosts /etc/hosts)
  echo "${cmd[*]}" > "$OUT/cmd-dns.txt"
  "${cmd[@]}" >"$W/dns.log" 2>&1 &
  PIDS+=($!)
  local i
  for ((i = 0; i < 50; i++)); do
    ss -Hlun 'sport = :53' | grep -q . && return 0
    sleep 0.1
  done
  die "dns.py did not start (see $W/dns.log)"
}

# The names W5 uses: r{rep}h{NNNN}.w5.test, 1,000 per repeat, fresh for every repeat.
w5_names() {  # w5_names REP
  local i
  for ((i = 0; i < 1000; i++)); do printf 'r%sh%04d.w5.test\n' "$1" "$i"; done
}

/* WebSocket echo server: every message comes straight back; "/" serves a page
 * with a browser client.
 *   ws_echo [URL]      default ws://127.0.0.1:8000
 * Try it: open http://127.0.0.1:8000/ in a browser, or
 *   node -e "const W=require('ws');const w=new W('ws://127.0.0.1:8000/ws');
 *            w.on('open',()=>w.send('hi'));w.on('message',m=>{console.log(''+m);w.close()})" */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <cymg/cymg.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig) { stop = sig; }

static const char page[] =
    "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>ws_echo</title></head>"
    "<body><h1>libcymg WebSocket echo</h1>"
    "<input id=\"t\" value=\"hello\"> <button id=\"b\">send</button><pre id=\"log\"></pre>"
    "<script>\n"
    "const log = (s) => { document.getElementById('log').textContent += s + '\\n'; };\n"
    "const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') +"
    " location.host + '/ws');\n"
    "ws.onopen = () => log('open');\n"
    "ws.onmessage = (e) => log('echo: ' + e.data);\n"
    "ws.onclose = (e) => log('closed ' + e.code);\n"
    "document.getElementById('b').onclick = () =>"
    " ws.send(document.getElementById('t').value);\n"
    "</script></body></html>\n";

static void on_event(cymg_conn *c, int ev, void *ev_data) {
  if (ev == CYMG_EV_HTTP_MSG) {
    cymg_http_msg *hm = ev_data;
    if (hm->flags & CYMG_HTTP_F_UPGRADE) {
      cymg_ws_upgrade(c, hm, NULL); /* answers 400/426 itself when the request is bad */
    } else if (cymg_str_eq(hm->uri, cymg_str_c("/"))) {
      cymg_http_reply(c, 200, "Content-Type: text/html; charset=utf-8\r\n", "%s", page);
    } else {
      cymg_http_reply(c, 404, "Content-Type: text/plain\r\n", "not found\n");
    }
  } else if (ev == CYMG_EV_WS_OPEN) {
    char a[64];
    cymg_addr_str(cymg_conn_remote(c), true, a, sizeof(a));
    printf("connection %llu from %s: WebSocket open\n", (unsigned long long) cymg_conn_id(c), a);
  } else if (ev == CYMG_EV_WS_MSG) {
    cymg_ws_msg *m = ev_data;
    cymg_ws_send(c, m->data.buf, m->data.len, CYMG_WS_OPCODE(m->flags));
  } else if (ev == CYMG_EV_ERROR) {
    fprintf(stderr, "connection %llu: %s\n", (unsigned long long) cymg_conn_id(c),
            (const char *) ev_data);
  }
}

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "ws://127.0.0.1:8000";
  if (strcmp(url, "--help") == 0 || strcmp(url, "-h") == 0) {
    printf("usage: %s [URL]   listen on URL (default ws://127.0.0.1:8000) and echo WebSocket\n"
           "                  messages; GET / gives a page with a browser client\n",
           argv[0]);
    return 0;
  }
  cymg_mgr *mgr;
  cymg_conn *lsn;
  if (cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO) != 0) return 1;
  int rc = strncmp(url, "http://", 7) == 0 ? cymg_http_listen(mgr, url, on_event, NULL, &lsn)
                                            : cymg_ws_listen(mgr, url, on_event, NULL, &lsn);
  if (rc != 0) {
    fprintf(stderr, "ws_echo: %s\n", cymg_mgr_errmsg(mgr));
    cymg_mgr_free(mgr);
    return 1;
  }
  cymg_ws_set_deflate(lsn, true, 0, 0, 0); /* compress for clients that offer it */
  char a[64];
  cymg_addr_str(cymg_conn_local(lsn), true, a, sizeof(a));
  printf("ws_echo: libcymg %s (%s) echoing on ws://%s/ws, page at http://%s/\n", cymg_version(),
         cymg_mgr_backend(mgr), a, a);
  fflush(stdout);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  while (!stop) cymg_mgr_poll(mgr, 1000);
  cymg_mgr_free(mgr);
  printf("ws_echo: stopped\n");
  return 0;
}

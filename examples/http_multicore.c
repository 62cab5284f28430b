/* One manager per core: N threads, each with its own manager and its own
 * SO_REUSEPORT listener on the same port, so the kernel spreads connections
 * over them and no lock is shared on the request path.
 *   http_multicore [URL] [--workers N]   default http://127.0.0.1:8000, N = cores
 * Try it: curl http://127.0.0.1:8000/
 * SIGINT/SIGTERM stop it gracefully: listeners close at once, idle connections
 * close, requests in flight get their answer, then each worker ends. */
#define _POSIX_C_SOURCE 200809L /* sigwait, pthread_sigmask */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cymg/cymg.h>

#define GRACE_MS 10000 /* a peer that never reads must not hold the stop forever */

typedef struct {
  int index;
  cymg_mgr *mgr;
  cymg_conn *lsn;
  uint64_t wakeup_id;
  pthread_t th;
  bool stopping, forced, failed;
} worker;

static atomic_bool stop_all;

static void on_event(cymg_conn *c, int ev, void *ev_data) {
  worker *w = cymg_conn_userdata(c);
  if (ev == CYMG_EV_HTTP_MSG) {
    int rc = cymg_http_reply(c, 200, "Content-Type: text/plain\r\n", "hello from worker %d\n",
                             w->index);
    if (rc < 0) {
      fprintf(stderr, "http_multicore: worker %d: reply: %s\n", w->index, cymg_strerror(rc));
      cymg_close(c);
    } else if (w->stopping) {
      cymg_drain(c); /* it was in flight when the stop came: answer, then end */
    }
  } else if (ev == CYMG_EV_ERROR) {
    fprintf(stderr, "http_multicore: worker %d: %s\n", w->index, (const char *) ev_data);
  }
}

/* The listener closes; connections with nothing half read close (after what
 * they still have to send); the others finish their request first. */
static void begin_stop(worker *w) {
  w->stopping = true;
  for (cymg_conn *c = cymg_mgr_first(w->mgr); c != NULL; c = cymg_conn_next(c)) {
    if (cymg_conn_id(c) == w->wakeup_id || cymg_conn_is_closing(c)) continue;
    if (cymg_conn_is_listening(c)) {
      cymg_close(c);
    } else if (cymg_conn_recv_len(c) == 0 || cymg_conn_send_len(c) > 0) {
      cymg_drain(c);
    }
  }
}

static size_t live(worker *w) {
  size_t n = 0;
  for (cymg_conn *c = cymg_mgr_first(w->mgr); c != NULL; c = cymg_conn_next(c))
    if (cymg_conn_id(c) != w->wakeup_id) n++;
  return n;
}

static void *run(void *arg) {
  worker *w = arg;
  uint64_t deadline = 0;
  for (;;) {
    int timeout = 1000;
    if (w->stopping) {
      uint64_t now = cymg_mgr_now(w->mgr);
      if (live(w) == 0) break;
      if (now >= deadline && !w->forced) {
        w->forced = true;
        for (cymg_conn *c = cymg_mgr_first(w->mgr); c != NULL; c = cymg_conn_next(c))
          if (cymg_conn_id(c) != w->wakeup_id) cymg_close(c);
      }
      timeout = w->forced ? 0 : (int) (deadline - now < 1000 ? deadline - now : 1000);
    }
    int rc = cymg_mgr_poll(w->mgr, timeout);
    if (rc < 0) {
      fprintf(stderr, "http_multicore: worker %d: poll: %s\n", w->index, cymg_strerror(rc));
      w->failed = true;
      break;
    }
    /* The main thread sets the flag, then interrupts the wait above. */
    if (!w->stopping && atomic_load(&stop_all)) {
      begin_stop(w);
      deadline = cymg_mgr_now(w->mgr) + GRACE_MS;
    }
  }
  return NULL;
}

/* Manager, wakeup channel (for cymg_mgr_interrupt) and an HTTP listener with
 * SO_REUSEPORT. Returns 0 or -1 with the reason printed. */
static int open_worker(worker *w, const char *url) {
  int rc = cymg_mgr_new(&w->mgr, CYMG_BACKEND_AUTO);
  if (rc < 0) {
    fprintf(stderr, "http_multicore: %s\n", cymg_strerror(rc));
    return -1;
  }
  int64_t wid = cymg_wakeup_init(w->mgr);
  if (wid < 0) {
    fprintf(stderr, "http_multicore: wakeup: %s\n", cymg_strerror((int) wid));
    return -1;
  }
  w->wakeup_id = (uint64_t) wid;
  rc = cymg_listen_reuseport(w->mgr, url, on_event, w, &w->lsn);
  if (rc < 0) {
    fprintf(stderr, "http_multicore: %s\n", cymg_mgr_errmsg(w->mgr));
    return -1;
  }
  rc = cymg_http_attach(w->lsn, true);
  if (rc < 0) {
    fprintf(stderr, "http_multicore: HTTP: %s\n", cymg_strerror(rc));
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  const char *url = "http://127.0.0.1:8000";
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  for (int i = 1; i < argc; i++) {
    char *end;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      printf("usage: %s [URL] [--workers N]   serve hello on URL (default "
             "http://127.0.0.1:8000) from N threads (default: one per core)\n",
             argv[0]);
      return 0;
    } else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
      n = strtol(argv[++i], &end, 10);
      if (*end != '\0' || n < 1 || n > 1024) {
        fprintf(stderr, "http_multicore: --workers takes a number from 1 to 1024\n");
        return 2;
      }
    } else if (strncmp(argv[i], "http://", 7) == 0) {
      url = argv[i];
    } else {
      fprintf(stderr, "http_multicore: unexpected '%s' (an http:// URL or --workers N)\n",
              argv[i]);
      return 2;
    }
  }
  if (n < 1) n = 1;
  worker *ws = calloc((size_t) n, sizeof(*ws));
  if (ws == NULL) {
    fprintf(stderr, "http_multicore: out of memory\n");
    return 1;
  }
  /* Blocked before any thread starts, so every worker inherits the mask and
   * the signals reach only sigwait() below: nothing runs in a handler. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int status = 1;
  long opened = 0, started = 0;
  char addr[64], same[96];
  if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) {
    fprintf(stderr, "http_multicore: cannot block signals\n");
    goto out;
  }
  /* The first listener may get port 0 resolved; the others take its address. */
  for (; opened < n; opened++) {
    ws[opened].index = (int) opened;
    if (open_worker(&ws[opened], opened == 0 ? url : same) < 0) {
      opened++;
      goto out;
    }
    if (opened == 0) {
      cymg_addr_str(cymg_conn_local(ws[0].lsn), true, addr, sizeof(addr));
      if (snprintf(same, sizeof(same), "http://%s", addr) >= (int) sizeof(same)) {
        fprintf(stderr, "http_multicore: address too long\n");
        opened++;
        goto out;
      }
    }
  }
  printf("http_multicore: libcymg %s (%s), %ld worker%s on %s/ (Ctrl-C stops)\n", cymg_version(),
         cymg_mgr_backend(ws[0].mgr), n, n == 1 ? "" : "s", same);
  fflush(stdout);
  for (; started < n; started++) {
    if (pthread_create(&ws[started].th, NULL, run, &ws[started]) != 0) {
      fprintf(stderr, "http_multicore: cannot start worker %ld\n", started);
      break;
    }
  }
  int sig = 0;
  if (started == n && sigwait(&set, &sig) != 0) fprintf(stderr, "http_multicore: sigwait\n");
  atomic_store(&stop_all, true);
  for (long i = 0; i < started; i++) {
    int rc = cymg_mgr_interrupt(ws[i].mgr);
    if (rc < 0) fprintf(stderr, "http_multicore: worker %ld: %s\n", i, cymg_strerror(rc));
  }
  for (long i = 0; i < started; i++) {
    if (pthread_join(ws[i].th, NULL) != 0) fprintf(stderr, "http_multicore: join %ld\n", i);
  }
  if (started == n) status = 0;
  for (long i = 0; i < started; i++) {
    if (ws[i].failed) status = 1;
    if (ws[i].forced) {
      fprintf(stderr, "http_multicore: worker %ld: connections still open after %d ms closed\n",
              i, GRACE_MS);
      status = 1;
    }
  }
  if (status == 0) printf("http_multicore: stopped\n");
out:
  for (long i = 0; i < opened; i++) cymg_mgr_free(ws[i].mgr);
  free(ws);
  return status;
}

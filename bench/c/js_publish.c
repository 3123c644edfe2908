// The baseline for the JetStream publish benchmark: the same synchronous
// publish-with-ack loop as bench/MirrorBench, written against libnats
// directly. Usage: js_publish URL SUBJECT PAYLOAD_FILE COUNT
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s URL SUBJECT PAYLOAD_FILE COUNT\n", argv[0]);
    return 2;
  }
  FILE *f = fopen(argv[3], "rb");
  if (!f) { perror(argv[3]); return 1; }
  static char payload[1 << 20];
  size_t len = fread(payload, 1, sizeof payload, f);
  fclose(f);
  int count = atoi(argv[4]);

  natsConnection *nc = NULL;
  jsCtx *js = NULL;
  natsStatus s = natsConnection_ConnectTo(&nc, argv[1]);
  if (s == NATS_OK) s = natsConnection_JetStream(&js, nc, NULL);
  if (s != NATS_OK) { fprintf(stderr, "connect: %s\n", natsStatus_GetText(s)); return 1; }

  double start = now_seconds();
  for (int i = 0; i < count && s == NATS_OK; i++) {
    natsMsg *msg = NULL;
    jsPubAck *ack = NULL;
    jsErrCode jerr = 0;
    char id[64];
    snprintf(id, sizeof id, "c-bench:%d", i);
    jsPubOptions opts;
    jsPubOptions_Init(&opts);
    opts.MsgId = id;
    s = natsMsg_Create(&msg, argv[2], NULL, payload, (int) len);
    if (s == NATS_OK) s = natsMsgHeader_Set(msg, "Content-Type", "application/x-protobuf");
    if (s == NATS_OK) s = natsMsgHeader_Set(msg, "Mirror-Type", "mirrorstage.v1.MetricsBatch");
    if (s == NATS_OK) s = natsMsgHeader_Set(msg, "Mirror-Schema", "1");
    if (s == NATS_OK) s = js_PublishMsg(&ack, js, msg, &opts, &jerr);
    jsPubAck_Destroy(ack);
    natsMsg_Destroy(msg);
  }
  double elapsed = now_seconds() - start;
  if (s != NATS_OK) { fprintf(stderr, "publish: %s\n", natsStatus_GetText(s)); return 1; }
  printf("%.1f\n", count / elapsed);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  nats_Close();
  return 0;
}

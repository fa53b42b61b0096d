/* The lifecycle of an embedder through the C API: layers applied from a descriptor
 * and from a read callback, a container prepared, mounted, written, diffed and
 * committed, a volume used, exported and imported, blobs and a manifest pushed, an
 * image exported to an OCI layout and imported back, and typed errors read.
 *
 * Usage: lifecycle WORKDIR vfs|overlay
 * WORKDIR holds base.tar and changes.tar (layer tars) and receives the stores.
 * Exits 0 after printing "lifecycle ok"; any failure prints what and exits 1. */
#include "cargohold.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static const char *work;

static void die(const char *what, cargohold_status st, cargohold_error *err) {
    fprintf(stderr, "FAIL %s: %s (%s)\n", what, cargohold_status_name(st),
            err ? cargohold_error_message(err) : "no error object");
    cargohold_error_free(err);
    exit(1);
}

#define CHECK(call)                                                                    \
    do {                                                                               \
        cargohold_error *err_ = NULL;                                                  \
        cargohold_status st_ = (call);                                                 \
        (void)err_;                                                                    \
        if (st_ != CARGOHOLD_STATUS_OK) die(#call, st_, err_);                         \
    } while (0)

/* Calls take &err_ through this name inside CHECK. */
#define ERR (&err_)

static void require(int cond, const char *what) {
    if (!cond) {
        fprintf(stderr, "FAIL %s\n", what);
        exit(1);
    }
}

static char *path(const char *name) {
    size_t n = strlen(work) + strlen(name) + 2;
    char *p = malloc(n);
    require(p != NULL, "malloc");
    snprintf(p, n, "%s/%s", work, name);
    return p;
}

/* A path in WORKDIR that stays valid until the next call (no allocation to free). */
static const char *path_tmp(const char *name) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", work, name);
    return buf;
}

static int open_in(const char *name, int flags) {
    char *p = path(name);
    int fd = open(p, flags, 0644);
    if (fd < 0) {
        fprintf(stderr, "FAIL open %s: %s\n", p, strerror(errno));
        exit(1);
    }
    free(p);
    return fd;
}

static void write_text(const char *p, const char *text) {
    FILE *f = fopen(p, "w");
    require(f != NULL, "fopen for writing");
    fputs(text, f);
    require(fclose(f) == 0, "fclose");
}

static char *read_text(const char *p) {
    FILE *f = fopen(p, "r");
    if (f == NULL) return NULL;
    static char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

struct file_source {
    int fd;
    size_t calls;
};

static ssize_t read_cb(void *ctx, uint8_t *buf, size_t len) {
    struct file_source *src = ctx;
    src->calls++;
    ssize_t n = read(src->fd, buf, len);
    return n < 0 ? -errno : n;
}

struct memory_source {
    const uint8_t *data;
    size_t len, at;
};

static ssize_t memory_read(void *ctx, uint8_t *buf, size_t len) {
    struct memory_source *m = ctx;
    size_t n = m->len - m->at < len ? m->len - m->at : len;
    memcpy(buf, m->data + m->at, n);
    m->at += n;
    return (ssize_t)n;
}

struct progress {
    uint64_t calls, last;
};

static void progress_cb(void *ctx, uint64_t done, uint64_t total) {
    struct progress *p = ctx;
    (void)total;
    p->calls++;
    p->last = done;
}

/* A write callback that takes at most 100 bytes a call (short writes are retried). */
struct file_sink {
    int fd;
    uint64_t bytes;
};

static ssize_t write_cb(void *ctx, const uint8_t *buf, size_t len) {
    struct file_sink *sink = ctx;
    ssize_t n = write(sink->fd, buf, len > 100 ? 100 : len);
    if (n < 0) return -errno;
    sink->bytes += (uint64_t)n;
    return n;
}

static void layers_and_containers(const char *driver_name, char **top_out) {
    uint32_t driver = strcmp(driver_name, "overlay") == 0 ? CARGOHOLD_LAYER_DRIVER_OVERLAY
                                                          : CARGOHOLD_LAYER_DRIVER_VFS;
    char *root = path("layers");
    cargohold_layer_store *store = NULL;
    CHECK(cargohold_layer_store_open(root, driver, &store, ERR));
    free(root);

    int fd = open_in("base.tar", O_RDONLY);
    char *base = NULL;
    struct progress prog = {0, 0};
    CHECK(cargohold_layer_apply_fd(store, fd, NULL, NULL, progress_cb, &prog, &base, ERR));
    close(fd);
    struct stat sb;
    require(stat(path_tmp("base.tar"), &sb) == 0, "stat base.tar");
    require(prog.calls >= 1 && prog.last == (uint64_t)sb.st_size,
            "apply progress reached the tar's size");

    char *json = NULL;
    CHECK(cargohold_layer_get(store, base, &json, ERR));
    require(strstr(json, "\"parent\":null") != NULL, "the base layer has no parent");
    cargohold_string_free(json);

    struct file_source src = {open_in("changes.tar", O_RDONLY), 0};
    char *changes = NULL;
    CHECK(cargohold_layer_apply_read(store, read_cb, &src, base, NULL, &changes, ERR));
    close(src.fd);
    require(src.calls > 0, "the read callback was called");

    /* The base layer has a child: removing it is IN_USE, with an error object. */
    cargohold_error *err = NULL;
    cargohold_status st = cargohold_layer_remove(store, base, &err);
    require(st == CARGOHOLD_STATUS_IN_USE, "removing a parent layer is IN_USE");
    require(err != NULL && cargohold_error_status(err) == CARGOHOLD_STATUS_IN_USE,
            "the error object carries the status");
    require(strcmp(cargohold_error_kind_name(err), "in_use") == 0, "kind name in_use");
    cargohold_error_free(err);

    char *mounts = NULL;
    CHECK(cargohold_container_prepare(store, "c1", changes, &mounts, ERR));
    require(strstr(mounts, "\"type\"") != NULL, "prepare returns mounts as JSON");
    cargohold_string_free(mounts);

    char *mnt = path("mnt");
    require(mkdir(mnt, 0755) == 0, "mkdir mnt");
    CHECK(cargohold_container_mount(store, "c1", mnt, ERR));
    char *f = malloc(strlen(mnt) + 32);
    sprintf(f, "%s/etc/base.txt", mnt);
    char *text = read_text(f);
    require(text != NULL && strcmp(text, "base\n") == 0, "the base layer is visible");
    sprintf(f, "%s/etc/changed.txt", mnt);
    text = read_text(f);
    require(text != NULL && strcmp(text, "changed\n") == 0, "the second layer is visible");
    sprintf(f, "%s/hello.txt", mnt);
    write_text(f, "hello from C\n");
    free(f);
    CHECK(cargohold_container_unmount(store, mnt, ERR));
    free(mnt);

    int diff = open_in("c1-diff.tar", O_WRONLY | O_CREAT | O_TRUNC);
    char *diff_id = NULL;
    uint64_t diff_size = 0;
    CHECK(cargohold_container_diff_fd(store, "c1", diff, &diff_id, &diff_size, ERR));
    close(diff);
    require(diff_size > 0 && strncmp(diff_id, "sha256:", 7) == 0, "diff wrote a tar");
    struct file_sink sink = {open_in("c1-diff-cb.tar", O_WRONLY | O_CREAT | O_TRUNC), 0};
    char *diff_id2 = NULL;
    uint64_t diff_size2 = 0;
    CHECK(cargohold_container_diff_write(store, "c1", write_cb, &sink, &diff_id2, &diff_size2,
                                         ERR));
    close(sink.fd);
    require(strcmp(diff_id, diff_id2) == 0 && diff_size2 == diff_size && sink.bytes == diff_size,
            "the diff through a write callback is the same tar");
    cargohold_string_free(diff_id);
    cargohold_string_free(diff_id2);

    char *top = NULL;
    CHECK(cargohold_container_commit(store, "c1", &top, ERR));

    /* A read-only view of the new layer, with its mounts. */
    CHECK(cargohold_container_view(store, "v1", top, NULL, ERR));
    CHECK(cargohold_container_mounts(store, "v1", &json, ERR));
    require(strstr(json, "\"ro\"") != NULL, "a view mounts read-only");
    cargohold_string_free(json);
    cargohold_error *verr = NULL;
    char *never = NULL;
    require(cargohold_container_commit(store, "v1", &never, &verr) ==
                CARGOHOLD_STATUS_INVALID_ARGUMENT && never == NULL,
            "a view cannot be committed");
    cargohold_error_free(verr);
    CHECK(cargohold_container_remove(store, "v1", ERR));

    /* A scratch container removed again. */
    CHECK(cargohold_container_prepare(store, "scratch", top, NULL, ERR));
    CHECK(cargohold_container_remove(store, "scratch", ERR));
    err = NULL;
    st = cargohold_container_remove(store, "scratch", &err);
    require(st == CARGOHOLD_STATUS_NOT_FOUND, "removing twice is NOT_FOUND");
    cargohold_error_free(err);

    char *list = NULL;
    CHECK(cargohold_layer_list(store, &list, ERR));
    require(strstr(list, base) && strstr(list, changes) && strstr(list, top),
            "the list has the three layers");
    cargohold_string_free(list);

    printf("layers %s %s %s\n", base, changes, top);
    cargohold_string_free(base);
    cargohold_string_free(changes);
    *top_out = top;
    require(cargohold_layer_store_free(store) == CARGOHOLD_STATUS_OK, "free layer store");
}

static void volumes(void) {
    char *root = path("volumes");
    cargohold_volume_store *vs = NULL;
    CHECK(cargohold_volume_store_open(root, &vs, ERR));
    free(root);

    uint32_t scope = 99;
    CHECK(cargohold_volume_capabilities(vs, &scope, ERR));
    require(scope == CARGOHOLD_VOLUME_SCOPE_LOCAL, "local scope");
    CHECK(cargohold_volume_create(vs, "data", NULL, "{\"app\":\"lifecycle\"}", NULL, ERR));
    char *p = NULL;
    CHECK(cargohold_volume_mount(vs, "data", "c1", &p, ERR));
    char *f = malloc(strlen(p) + 16);
    sprintf(f, "%s/note.txt", p);
    write_text(f, "kept\n");
    free(f);
    cargohold_string_free(p);

    char *json = NULL;
    CHECK(cargohold_volume_get(vs, "data", &json, ERR));
    require(strstr(json, "\"lifecycle\"") && strstr(json, "\"c1\""),
            "get shows the label and the holder");
    cargohold_string_free(json);

    cargohold_error *err = NULL;
    require(cargohold_volume_remove(vs, "data", false, &err) == CARGOHOLD_STATUS_IN_USE,
            "a held volume is IN_USE");
    cargohold_error_free(err);
    CHECK(cargohold_volume_unmount(vs, "data", "c1", ERR));

    int out = open_in("data.tar", O_WRONLY | O_CREAT | O_TRUNC);
    CHECK(cargohold_volume_export_fd(vs, "data", out, ERR));
    close(out);
    char *anon = NULL;
    CHECK(cargohold_volume_create(vs, NULL, NULL, NULL, &anon, ERR));
    int in = open_in("data.tar", O_RDONLY);
    CHECK(cargohold_volume_import_fd(vs, anon, in, ERR));
    close(in);
    CHECK(cargohold_volume_path(vs, anon, &p, ERR));
    require(p != NULL, "a plain volume has a path");
    f = malloc(strlen(p) + 16);
    sprintf(f, "%s/note.txt", p);
    char *text = read_text(f);
    require(text && strcmp(text, "kept\n") == 0, "the import restored the file");
    free(f);
    cargohold_string_free(p);

    char *pop = path("populate-src");
    require(mkdir(pop, 0755) == 0, "mkdir populate-src");
    f = malloc(strlen(pop) + 16);
    sprintf(f, "%s/seed.txt", pop);
    write_text(f, "seed\n");
    free(f);
    CHECK(cargohold_volume_create(vs, "seeded", NULL, NULL, NULL, ERR));
    bool copied = false;
    CHECK(cargohold_volume_populate(vs, "seeded", pop, &copied, ERR));
    require(copied, "populate copied into an empty volume");
    free(pop);

    CHECK(cargohold_volume_list(vs, &json, ERR));
    require(strstr(json, "\"data\"") && strstr(json, anon) && strstr(json, "\"seeded\""),
            "list has the three volumes");
    cargohold_string_free(json);

    CHECK(cargohold_volume_prune(vs, false, &json, ERR));
    require(strstr(json, anon) && !strstr(json, "\"data\""), "prune removed the anonymous one");
    cargohold_string_free(json);
    cargohold_string_free(anon);
    CHECK(cargohold_volume_remove(vs, "seeded", false, ERR));
    require(cargohold_volume_store_free(vs) == CARGOHOLD_STATUS_OK, "free volume store");
}

static void registry(void) {
    char *root = path("registry");
    cargohold_registry *reg = NULL;
    CHECK(cargohold_registry_open(root, &reg, ERR));
    free(root);

    char *cfg_path = path("config.json");
    write_text(cfg_path, "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":"
                         "\"layers\",\"diff_ids\":[]}}");
    free(cfg_path);
    int fd = open_in("config.json", O_RDONLY);
    char *cfg = NULL;
    uint64_t cfg_size = 0;
    CHECK(cargohold_blob_put_fd(reg, "lab/app", fd, NULL, NULL, NULL, &cfg, &cfg_size, ERR));
    close(fd);

    /* The layer goes up as a resumable upload in two chunks: a descriptor's first
     * 1000 bytes, then the rest through a read callback. */
    char *id = NULL;
    CHECK(cargohold_upload_start(reg, "lab/app", &id, ERR));
    int whole = open_in("base.tar", O_RDONLY);
    int head = open_in("base-head.bin", O_RDWR | O_CREAT | O_TRUNC);
    char chunk[1000];
    require(read(whole, chunk, sizeof chunk) == (ssize_t)sizeof chunk, "read a chunk");
    require(write(head, chunk, sizeof chunk) == (ssize_t)sizeof chunk, "write a chunk");
    require(lseek(head, 0, SEEK_SET) == 0, "rewind");
    uint64_t offset = 0;
    CHECK(cargohold_upload_append_fd(reg, "lab/app", id, 0, head, &offset, ERR));
    close(head);
    require(offset == sizeof chunk, "the first chunk is in");
    cargohold_error *cerr = NULL;
    struct file_source rest = {whole, 0};
    require(cargohold_upload_append_read(reg, "lab/app", id, 7, read_cb, &rest, NULL, &cerr) ==
                CARGOHOLD_STATUS_CONFLICT,
            "a chunk at the wrong offset is CONFLICT");
    cargohold_error_free(cerr);
    uint64_t at = 0;
    CHECK(cargohold_upload_offset(reg, "lab/app", id, &at, ERR));
    require(at == sizeof chunk && rest.calls == 0, "nothing was read or appended");
    CHECK(cargohold_upload_append_read(reg, "lab/app", id, offset, read_cb, &rest, &offset, ERR));
    close(whole);
    uint64_t layer_size = 0;
    CHECK(cargohold_upload_commit(reg, "lab/app", id, NULL, &layer_size, ERR));
    require(layer_size == offset, "the blob has every byte");
    cerr = NULL;
    require(cargohold_upload_cancel(reg, "lab/app", id, &cerr) == CARGOHOLD_STATUS_NOT_FOUND,
            "a committed upload is gone");
    cargohold_error_free(cerr);
    cargohold_string_free(id);
    fd = open_in("base.tar", O_RDONLY);
    char *layer = NULL;
    CHECK(cargohold_blob_put_fd(reg, "lab/app", fd, NULL, NULL, NULL, &layer, NULL, ERR));
    close(fd);

    uint64_t size = 0;
    CHECK(cargohold_blob_stat(reg, "lab/app", layer, &size, ERR));
    require(size == layer_size, "stat gives the size put");
    int out = open_in("layer-copy.tar", O_WRONLY | O_CREAT | O_TRUNC);
    uint64_t written = 0;
    CHECK(cargohold_blob_read_fd(reg, "lab/app", layer, out, &written, ERR));
    close(out);
    require(written == layer_size, "read gives every byte");
    struct file_sink sink = {open_in("layer-copy-cb.tar", O_WRONLY | O_CREAT | O_TRUNC), 0};
    CHECK(cargohold_blob_read_write(reg, "lab/app", layer, write_cb, &sink, &written, ERR));
    close(sink.fd);
    require(written == layer_size && sink.bytes == layer_size, "read through a callback");

    /* A wrong expected digest keeps nothing. */
    fd = open_in("config.json", O_RDONLY);
    cargohold_error *err = NULL;
    cargohold_status st = cargohold_blob_put_fd(
        reg, "lab/app", fd,
        "sha256:0000000000000000000000000000000000000000000000000000000000000000", NULL,
        NULL, NULL, NULL, &err);
    close(fd);
    require(st == CARGOHOLD_STATUS_DIGEST_MISMATCH, "a wrong digest is DIGEST_MISMATCH");
    cargohold_error_free(err);

    char manifest[2048];
    snprintf(manifest, sizeof manifest,
             "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
             "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
             "\"digest\":\"%s\",\"size\":%llu},\"layers\":[{\"mediaType\":"
             "\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"%s\",\"size\":%llu}]}",
             cfg, (unsigned long long)cfg_size, layer, (unsigned long long)layer_size);
    char *mdigest = NULL;
    CHECK(cargohold_manifest_put(reg, "lab/app", "v1", (const uint8_t *)manifest,
                                 strlen(manifest), NULL, &mdigest, ERR));
    uint8_t *data = NULL;
    size_t len = 0;
    char *mt = NULL;
    CHECK(cargohold_manifest_get(reg, "lab/app", mdigest, &data, &len, &mt, ERR));
    require(len == strlen(manifest) && memcmp(data, manifest, len) == 0,
            "the manifest comes back byte for byte");
    require(strcmp(mt, "application/vnd.oci.image.manifest.v1+json") == 0, "media type");
    cargohold_bytes_free(data, len);
    cargohold_string_free(mt);

    char *refs = NULL;
    CHECK(cargohold_registry_referrers(reg, "lab/app", mdigest, NULL, &refs, ERR));
    require(strcmp(refs, "[]") == 0, "no referrers yet");
    cargohold_string_free(refs);

    /* An artifact about the image (OCI 1.1 subject): its empty config goes up through a
     * read callback over memory, then the image lists it as a referrer. */
    struct memory_source empty = {(const uint8_t *)"{}", 2, 0};
    char *empty_digest = NULL;
    CHECK(cargohold_blob_put_read(reg, "lab/app", memory_read, &empty, NULL, &empty_digest,
                                  NULL, ERR));
    char artifact[2048];
    snprintf(artifact, sizeof artifact,
             "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
             "\"artifactType\":\"application/vnd.example.sbom\",\"config\":{\"mediaType\":"
             "\"application/vnd.oci.empty.v1+json\",\"digest\":\"%s\",\"size\":2},"
             "\"layers\":[],\"subject\":{\"mediaType\":"
             "\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"%s\",\"size\":%zu}}",
             empty_digest, mdigest, strlen(manifest));
    char *adigest = NULL;
    CHECK(cargohold_manifest_put(reg, "lab/app", "sbom", (const uint8_t *)artifact,
                                 strlen(artifact), NULL, &adigest, ERR));
    CHECK(cargohold_registry_referrers(reg, "lab/app", mdigest, "application/vnd.example.sbom",
                                       &refs, ERR));
    require(strstr(refs, adigest) != NULL, "the artifact is a referrer of the image");
    cargohold_string_free(refs);
    CHECK(cargohold_registry_referrers(reg, "lab/app", mdigest, "application/other", &refs,
                                       ERR));
    require(strcmp(refs, "[]") == 0, "the artifact type filters");
    cargohold_string_free(refs);
    cargohold_string_free(adigest);
    cargohold_string_free(empty_digest);

    char *tags = NULL;
    CHECK(cargohold_registry_tags(reg, "lab/app", &tags, ERR));
    require(strcmp(tags, "[\"sbom\",\"v1\"]") == 0, "tags lists sbom and v1");
    cargohold_string_free(tags);

    char *oci = path("oci");
    struct progress prog = {0, 0};
    CHECK(cargohold_oci_export(reg, "lab/app", "v1", oci, "v1", progress_cb, &prog, ERR));
    require(prog.calls == 2 && prog.last == cfg_size + layer_size,
            "export reported both blobs");
    struct progress prog2 = {0, 0};
    char *imported = NULL;
    CHECK(cargohold_oci_import(reg, oci, "v1", "lab/copy", "latest", progress_cb, &prog2,
                               &imported, ERR));
    require(strcmp(imported, mdigest) == 0, "the import keeps the manifest digest");
    free(oci);
    printf("registry %s %s\n", mdigest, layer);
    cargohold_string_free(imported);
    cargohold_string_free(mdigest);
    cargohold_string_free(cfg);
    cargohold_string_free(layer);
    require(cargohold_registry_free(reg) == CARGOHOLD_STATUS_OK, "free registry");
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: lifecycle WORKDIR vfs|overlay\n");
        return 2;
    }
    work = argv[1];
    char *top = NULL;
    layers_and_containers(argv[2], &top);
    volumes();
    registry();
    cargohold_string_free(top);
    printf("lifecycle ok\n");
    return 0;
}

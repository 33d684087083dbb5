/* One RTP frame to one site in one call: headers, SRTP, send (bridge/rtp_forwarder.py).
 *
 * The forwarder's per-packet work in Python (pack a header, join the packet,
 * protect it, send it) cost about 60 us a frame and 30 us an audio packet in
 * a 31-site bridge (docs/performance.md); this module does that work for the
 * whole frame in C: each packet's header (with the header extension and its
 * abs-send-time), SRTP protection in place with the session's own libsrtp
 * context, called through the function pointer pylibsrtp's binding exports
 * (bridge/srtp_calls.py), and one sendmsg with UDP segmentation offload (or
 * one sendto per packet where GSO is off or the sizes do not allow it).
 *
 * It owns no state: the caller passes the socket, the address, the SRTP
 * context, the stream's header fields and the payloads, keeps the sequence
 * numbers, the NACK history and aiortc's sender counters. The GIL is held
 * throughout, so one static buffer serves every call. A send that fails
 * (a full socket buffer, GSO refused, a network error) is not retried here:
 * the datagrams not sent are returned, protected, for the transport to send
 * (it queues them or reports the error as it would without this module).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103 /* Linux 4.18 and later */
#endif

#define BUFFER_SIZE 65000      /* one GSO send at most: under a UDP datagram's 65,507 */
#define MAX_SEGMENTS 64        /* the kernel's UDP_MAX_SEGMENTS */
#define MAX_TRAILER 144        /* pylibsrtp.SRTP_MAX_TRAILER_LEN */
#define MAX_PACKET 1500        /* as pylibsrtp's buffer: clear packet plus trailer */

typedef int (*protect_fn)(void *context, void *packet, int *length);

static unsigned char buffer[BUFFER_SIZE];

typedef struct {
    int fd;
    const struct sockaddr *addr;
    socklen_t addr_length;
    int gso;
    int error;              /* errno of the first failed send; 0 while all went out */
    PyObject *unsent;       /* list of protected datagrams not sent, once one failed */
} Sender;

/* Keep datagrams [first, count) of this batch for the caller, from the first failure on.
 * They are copied out of the shared buffer before anything that may run the garbage
 * collector (a list allocation), whose finalizers could call back into this module. */
static int keep_unsent(Sender *s, unsigned char *const *starts, const int *lengths,
                       int first, int count) {
    PyObject *copies[MAX_SEGMENTS];
    int copied = 0, status = 0;
    for (int i = first; i < count; i++) {
        copies[copied] = PyBytes_FromStringAndSize((const char *)starts[i], lengths[i]);
        if (copies[copied] == NULL) {
            status = -1;
            break;
        }
        copied++;
    }
    if (status == 0 && s->unsent == NULL && (s->unsent = PyList_New(0)) == NULL)
        status = -1;
    for (int i = 0; i < copied; i++) {
        if (status == 0 && PyList_Append(s->unsent, copies[i]) < 0)
            status = -1;
        Py_DECREF(copies[i]);
    }
    return status;
}

static int segmentable(const int *lengths, int count) {
    for (int i = 1; i < count - 1; i++)
        if (lengths[i] != lengths[0])
            return 0;
    return lengths[count - 1] <= lengths[0];
}

/* Send one batch of protected datagrams, contiguous in `buffer`. */
static int flush(Sender *s, unsigned char *const *starts, const int *lengths, int count) {
    if (count == 0)
        return 0;
    if (s->error)
        return keep_unsent(s, starts, lengths, 0, count);
    if (count > 1 && s->gso && segmentable(lengths, count)) {
        struct iovec iov = {starts[0], (size_t)(starts[count - 1] + lengths[count - 1] - starts[0])};
        union {
            char space[CMSG_SPACE(sizeof(uint16_t))];
            struct cmsghdr align;
        } control;
        memset(&control, 0, sizeof(control));
        struct msghdr message = {0};
        message.msg_name = (void *)s->addr;
        message.msg_namelen = s->addr_length;
        message.msg_iov = &iov;
        message.msg_iovlen = 1;
        message.msg_control = control.space;
        message.msg_controllen = sizeof(control.space);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&message);
        cmsg->cmsg_level = SOL_UDP;
        cmsg->cmsg_type = UDP_SEGMENT;
        cmsg->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t segment = (uint16_t)lengths[0];
        memcpy(CMSG_DATA(cmsg), &segment, sizeof(segment));
        if (sendmsg(s->fd, &message, 0) >= 0)
            return 0;
        s->error = errno;
        return keep_unsent(s, starts, lengths, 0, count);
    }
    for (int i = 0; i < count; i++) {
        if (sendto(s->fd, starts[i], (size_t)lengths[i], 0, s->addr, s->addr_length) < 0) {
            s->error = errno;
            return keep_unsent(s, starts, lengths, i, count);
        }
    }
    return 0;
}

static int as_buffer(PyObject *object, const char *name, Py_buffer *view) {
    if (PyObject_GetBuffer(object, view, PyBUF_SIMPLE) < 0) {
        PyErr_Format(PyExc_TypeError, "%s must be bytes-like", name);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(send_frame_doc,
"send_frame(fd, sockaddr, protect, context, extension, abs_offset, now, payload_type,\n"
"           sequence, timestamp, ssrc, first_prefix, prefix, chunks, gso)\n"
"\n"
"Send one frame as RTP packets, SRTP-protected, to `sockaddr` (a packed struct\n"
"sockaddr) on socket `fd`. Packet i carries `first_prefix` (i = 0) or `prefix`,\n"
"then chunks[i]; the last gets the marker bit. `protect` and `context` are the\n"
"addresses of libsrtp's srtp_protect and of the session's srtp_t. `extension` is\n"
"the header extension (RFC 8285, padded); when `abs_offset` >= 0 the abs-send-time\n"
"of `now` (seconds) is written at that offset. `gso`: one sendmsg with UDP\n"
"segmentation offload where the sizes allow.\n"
"\n"
"Returns the payload octets sent, or, when a send failed, (errno, datagrams):\n"
"the protected datagrams not sent, for the caller to send another way.");

static PyObject *send_frame(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 15) {
        PyErr_SetString(PyExc_TypeError, "send_frame takes 15 arguments");
        return NULL;
    }
    int fd = (int)PyLong_AsLong(args[0]);
    protect_fn protect = (protect_fn)PyLong_AsVoidPtr(args[2]);
    void *context = PyLong_AsVoidPtr(args[3]);
    long abs_offset = PyLong_AsLong(args[5]);
    double now = PyFloat_AsDouble(args[6]);
    long payload_type = PyLong_AsLong(args[7]);
    unsigned long sequence = PyLong_AsUnsignedLongMask(args[8]);
    unsigned long timestamp = PyLong_AsUnsignedLongMask(args[9]);
    unsigned long ssrc = PyLong_AsUnsignedLongMask(args[10]);
    int gso = PyObject_IsTrue(args[14]);
    if (PyErr_Occurred())
        return NULL;
    if (protect == NULL || context == NULL) {
        PyErr_SetString(PyExc_ValueError, "no SRTP session");
        return NULL;
    }
    PyObject *chunks = PySequence_Fast(args[13], "chunks must be a sequence");
    if (chunks == NULL)
        return NULL;
    Py_buffer addr = {0}, extension = {0}, first_prefix = {0}, prefix = {0};
    PyObject *result = NULL;
    Sender sender = {0};
    if (as_buffer(args[1], "sockaddr", &addr) < 0)
        goto done;
    if (as_buffer(args[4], "extension", &extension) < 0)
        goto done;
    if (as_buffer(args[11], "first_prefix", &first_prefix) < 0)
        goto done;
    if (as_buffer(args[12], "prefix", &prefix) < 0)
        goto done;
    if (abs_offset >= 0 && abs_offset > extension.len - 3) {
        PyErr_SetString(PyExc_ValueError, "abs_offset outside the extension");
        goto done;
    }
    if (payload_type < 0 || payload_type > 127) {
        PyErr_SetString(PyExc_ValueError, "payload_type must be 0-127");
        goto done;
    }
    sender.fd = fd;
    sender.addr = (const struct sockaddr *)addr.buf;
    sender.addr_length = (socklen_t)addr.len;
    sender.gso = gso;

    /* The header's first 12 bytes: version 2, X when an extension, then per packet the
     * marker, sequence number; the extension's abs-send-time (6.18 fixed point). */
    unsigned char head[12];
    head[0] = extension.len ? 0x90 : 0x80;
    head[4] = (unsigned char)(timestamp >> 24);
    head[5] = (unsigned char)(timestamp >> 16);
    head[6] = (unsigned char)(timestamp >> 8);
    head[7] = (unsigned char)timestamp;
    head[8] = (unsigned char)(ssrc >> 24);
    head[9] = (unsigned char)(ssrc >> 16);
    head[10] = (unsigned char)(ssrc >> 8);
    head[11] = (unsigned char)ssrc;
    unsigned char abs_time[3] = {0, 0, 0};
    if (abs_offset >= 0) {
        uint32_t fixed = (uint32_t)((uint64_t)(now * 262144.0) & 0xFFFFFF);
        abs_time[0] = (unsigned char)(fixed >> 16);
        abs_time[1] = (unsigned char)(fixed >> 8);
        abs_time[2] = (unsigned char)fixed;
    }

    Py_ssize_t count = PySequence_Fast_GET_SIZE(chunks);
    PyObject **items = PySequence_Fast_ITEMS(chunks);
    unsigned char *starts[MAX_SEGMENTS];
    int lengths[MAX_SEGMENTS];
    int batch = 0;
    unsigned char *cursor = buffer;
    long long octets = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_buffer chunk;
        if (as_buffer(items[i], "a chunk", &chunk) < 0)
            goto done;
        const Py_buffer *lead = i == 0 ? &first_prefix : &prefix;
        Py_ssize_t length = 12 + extension.len + lead->len + chunk.len;
        if (length + MAX_TRAILER > MAX_PACKET) {
            PyBuffer_Release(&chunk);
            PyErr_SetString(PyExc_ValueError, "packet is too long");
            goto done;
        }
        if (batch == MAX_SEGMENTS || cursor + length + MAX_TRAILER > buffer + BUFFER_SIZE) {
            if (flush(&sender, starts, lengths, batch) < 0) {
                PyBuffer_Release(&chunk);
                goto done;
            }
            batch = 0;
            cursor = buffer;
        }
        unsigned char *packet = cursor;
        memcpy(packet, head, 12);
        packet[1] = (unsigned char)(payload_type | (i == count - 1 ? 0x80 : 0));
        packet[2] = (unsigned char)(sequence >> 8);
        packet[3] = (unsigned char)sequence;
        sequence = (sequence + 1) & 0xFFFF;
        unsigned char *at = packet + 12;
        memcpy(at, extension.buf, (size_t)extension.len);
        if (abs_offset >= 0)
            memcpy(at + abs_offset, abs_time, 3);
        at += extension.len;
        memcpy(at, lead->buf, (size_t)lead->len);
        at += lead->len;
        memcpy(at, chunk.buf, (size_t)chunk.len);
        octets += lead->len + chunk.len;
        PyBuffer_Release(&chunk);
        int protected_length = (int)length;
        int status = protect(context, packet, &protected_length);
        if (status) {
            PyErr_Format(PyExc_RuntimeError, "libsrtp error %d", status);
            goto done;
        }
        starts[batch] = packet;
        lengths[batch++] = protected_length;
        cursor += protected_length;
    }
    if (flush(&sender, starts, lengths, batch) < 0)
        goto done;
    if (sender.error)
        result = Py_BuildValue("(iO)", sender.error, sender.unsent);
    else
        result = PyLong_FromLongLong(octets);
done:
    if (addr.obj) PyBuffer_Release(&addr);
    if (extension.obj) PyBuffer_Release(&extension);
    if (first_prefix.obj) PyBuffer_Release(&first_prefix);
    if (prefix.obj) PyBuffer_Release(&prefix);
    Py_XDECREF(sender.unsent);
    Py_DECREF(chunks);
    return result;
}

static PyMethodDef methods[] = {
    {"send_frame", (PyCFunction)(void (*)(void))send_frame, METH_FASTCALL, send_frame_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "bridge.rtp_send_native",
    "One RTP frame to one site in one call: headers, SRTP, send.", -1, methods,
};

PyMODINIT_FUNC PyInit_rtp_send_native(void) {
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && (PyModule_AddIntConstant(m, "MAX_TRAILER", MAX_TRAILER) < 0
                      || PyModule_AddIntConstant(m, "MAX_PACKET", MAX_PACKET) < 0)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

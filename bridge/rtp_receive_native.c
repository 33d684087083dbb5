/* One received SRTP packet of a site's microphone or camera, unprotected and parsed in
 * one call (bridge/datagram_tap.py).
 *
 * The bridge receives about 2,800 RTP packets a second at 31 sites. In Python each
 * was copied into libsrtp's buffer and out again (bridge/srtp_calls.py), then its
 * header and extension block walked byte by byte (bridge/lean_rtp.py); here both
 * happen in C, and Python gets the fields the bridge reads.
 *
 * The packet is refused (ValueError) exactly where lean_rtp.parse_packet, and so
 * aiortc's own parser, refuses it: the same checks in the same order, with the same
 * messages; only the audio level and abs-send-time of the header extensions are
 * returned. It owns no state: the SRTP context is the session's, reached through
 * the function pointer pylibsrtp's binding exports (srtp_calls.SessionCalls.native_unprotect).
 * The GIL is held throughout, so one static buffer serves every call.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>

#define MAX_PACKET 1500 /* as pylibsrtp's buffer */
#define ONE_BYTE_PROFILE 0xBEDE
#define TWO_BYTE_PROFILE 0x1000 /* as aiortc: only this value, not its "appbits" variants */

typedef int (*unprotect_fn)(void *context, void *packet, int *length);

/* The negotiated extension ids, in the order aiortc's HeaderExtensionsMap.get checks
 * them; 0 where not negotiated (RFC 8285 ids are 1-255). */
enum { MID, RID_REPAIRED, RID, ABS_SEND_TIME, TOFFSET, AUDIO_LEVEL, TRANSPORT_SEQ, ID_COUNT };
static const char *const id_names[ID_COUNT] = {
    "mid", "repaired_rtp_stream_id", "rtp_stream_id", "abs_send_time",
    "transmission_offset", "audio_level", "transport_sequence_number",
};
static PyObject *id_attributes[ID_COUNT];

static unsigned char buffer[MAX_PACKET];

static int read_ids(PyObject *ids, long *out) {
    for (int i = 0; i < ID_COUNT; i++) {
        PyObject *value = PyObject_GetAttr(ids, id_attributes[i]);
        if (value == NULL)
            return -1;
        out[i] = value == Py_None ? 0 : PyLong_AsLong(value);
        Py_DECREF(value);
        if (out[i] == -1 && PyErr_Occurred())
            return -1;
    }
    return 0;
}

static int refuse(const char *message) {
    PyErr_SetString(PyExc_ValueError, message);
    return -1;
}

static PyObject *refused(const char *message) {
    refuse(message);
    return NULL;
}

/* The extension elements in data[pos:end], walked as lean_rtp._read_extensions walks
 * them (the last of an id wins). Sets *level (-1: none) and *abs_time (-1: none). */
static int read_extensions(const unsigned char *data, Py_ssize_t pos, Py_ssize_t end,
                           unsigned profile, const long *ids, long *level, long *abs_time) {
    int one_byte;
    if (profile == ONE_BYTE_PROFILE)
        one_byte = 1;
    else if (profile == TWO_BYTE_PROFILE)
        one_byte = 0;
    else
        return 0; /* aiortc ignores the block */
    while (pos < end) {
        unsigned head = data[pos];
        if (head == 0) { /* padding between elements */
            pos++;
            continue;
        }
        long x_id;
        Py_ssize_t length;
        if (one_byte) {
            x_id = head >> 4;
            length = (head & 0x0F) + 1;
            pos += 1;
        } else {
            if (end < pos + 2)
                return refuse("RTP two-byte header extension is truncated");
            x_id = head;
            length = data[pos + 1];
            pos += 2;
        }
        Py_ssize_t value_end = pos + length;
        if (end < value_end)
            return refuse("RTP header extension value is truncated");
        const unsigned char *value = data + pos;
        if (x_id == ids[MID]) {
            PyObject *text = PyUnicode_DecodeUTF8((const char *)value, length, "strict");
            if (text == NULL)
                return -1; /* UnicodeDecodeError is a ValueError, as in aiortc */
            Py_DECREF(text);
        } else if (x_id == ids[RID_REPAIRED] || x_id == ids[RID]) {
            PyObject *text = PyUnicode_DecodeASCII((const char *)value, length, "strict");
            if (text == NULL)
                return -1;
            Py_DECREF(text);
        } else if (x_id == ids[ABS_SEND_TIME]) {
            if (length != 3)
                return refuse("RTP abs-send-time extension of the wrong size");
            *abs_time = ((long)value[0] << 16) | ((long)value[1] << 8) | value[2];
        } else if (x_id == ids[TOFFSET]) {
            if (length != 3)
                return refuse("RTP transmission offset extension of the wrong size");
        } else if (x_id == ids[AUDIO_LEVEL]) {
            if (length != 1)
                return refuse("RTP audio level extension of the wrong size");
            *level = value[0];
        } else if (x_id == ids[TRANSPORT_SEQ] && length != 2) {
            return refuse("RTP transport sequence number of the wrong size");
        }
        pos = value_end;
    }
    return 0;
}

/* The clear packet data[0:size] as a tuple of the fields the bridge reads. */
static PyObject *parse_clear(const unsigned char *data, Py_ssize_t size, const long *ids) {
    if (size < 12)
        return refused("RTP packet length is less than 12 bytes");
    if (data[0] >> 6 != 2)
        return refused("RTP packet has invalid version");
    int csrc_count = data[0] & 0x0F;
    Py_ssize_t pos = 12 + 4 * csrc_count;
    if (size < pos)
        return refused("RTP packet has truncated CSRC");
    long level = -1, abs_time = -1;
    if (data[0] & 0x10) {
        if (size < pos + 4)
            return refused("RTP packet has truncated extension profile / length");
        unsigned profile = ((unsigned)data[pos] << 8) | data[pos + 1];
        Py_ssize_t end = pos + 4 + 4 * (((Py_ssize_t)data[pos + 2] << 8) | data[pos + 3]);
        if (size < end)
            return refused("RTP packet has truncated extension value");
        if (read_extensions(data, pos + 4, end, profile, ids, &level, &abs_time) < 0)
            return NULL;
        pos = end;
    }
    Py_ssize_t padding = 0;
    if (data[0] & 0x20) {
        padding = data[size - 1];
        if (!padding || padding > size - pos)
            return refused("RTP packet padding length is invalid");
    }
    PyObject *csrc = PyTuple_New(csrc_count);
    if (csrc == NULL)
        return NULL;
    for (int i = 0; i < csrc_count; i++) {
        const unsigned char *at = data + 12 + 4 * i;
        PyObject *item = PyLong_FromUnsignedLong(((unsigned long)at[0] << 24)
                                                 | ((unsigned long)at[1] << 16)
                                                 | ((unsigned long)at[2] << 8) | at[3]);
        if (item == NULL) {
            Py_DECREF(csrc);
            return NULL;
        }
        PyTuple_SET_ITEM(csrc, i, item);
    }
    PyObject *audio_level = Py_None, *abs_send_time = Py_None;
    Py_INCREF(Py_None);
    Py_INCREF(Py_None);
    if (level >= 0) {
        Py_DECREF(audio_level);
        audio_level = Py_BuildValue("(Ol)", (level & 0x80) ? Py_True : Py_False, level & 0x7F);
    }
    if (abs_time >= 0) {
        Py_DECREF(abs_send_time);
        abs_send_time = PyLong_FromLong(abs_time);
    }
    PyObject *result = NULL;
    if (audio_level != NULL && abs_send_time != NULL)
        result = Py_BuildValue(
            "(iikkkNy#nOO)", data[1] & 0x7F, data[1] >> 7,
            ((unsigned long)data[2] << 8) | data[3],
            ((unsigned long)data[4] << 24) | ((unsigned long)data[5] << 16)
                | ((unsigned long)data[6] << 8) | data[7],
            ((unsigned long)data[8] << 24) | ((unsigned long)data[9] << 16)
                | ((unsigned long)data[10] << 8) | data[11],
            csrc, (const char *)data + pos, size - pos - padding, padding,
            audio_level, abs_send_time);
    else
        Py_DECREF(csrc);
    Py_XDECREF(audio_level);
    Py_XDECREF(abs_send_time);
    return result;
}

PyDoc_STRVAR(receive_doc,
"receive(data, unprotect, context, ids)\n"
"\n"
"Unprotect the SRTP packet `data` with libsrtp (`unprotect` and `context`: the\n"
"addresses of srtp_unprotect and of the session's srtp_t) and parse it. `ids`: the\n"
"negotiated header extension ids (aiortc's HeaderExtensions of ids).\n"
"\n"
"Returns libsrtp's status (an int, not 0) when it refuses the packet, else\n"
"(payload_type, marker, sequence_number, timestamp, ssrc, csrc, payload,\n"
"padding_size, audio_level, abs_send_time); audio_level is (voice, level) or None,\n"
"abs_send_time an int or None. Raises ValueError where aiortc's parser refuses the\n"
"clear packet, and for a packet longer than MAX_PACKET.");

static PyObject *receive(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "receive takes 4 arguments");
        return NULL;
    }
    unprotect_fn unprotect = (unprotect_fn)PyLong_AsVoidPtr(args[1]);
    void *context = PyLong_AsVoidPtr(args[2]);
    long ids[ID_COUNT];
    if (PyErr_Occurred() || read_ids(args[3], ids) < 0)
        return NULL;
    if (unprotect == NULL || context == NULL) {
        PyErr_SetString(PyExc_ValueError, "no SRTP session");
        return NULL;
    }
    Py_buffer data;
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0)
        return NULL;
    if (data.len > MAX_PACKET) {
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_ValueError, "packet is too long");
        return NULL;
    }
    int length = (int)data.len;
    memcpy(buffer, data.buf, (size_t)length);
    PyBuffer_Release(&data);
    int status = unprotect(context, buffer, &length);
    if (status)
        return PyLong_FromLong(status);
    return parse_clear(buffer, length, ids);
}

PyDoc_STRVAR(parse_doc,
"parse(data, ids)\n"
"\n"
"`data`, a clear RTP packet, parsed as `receive` parses it after unprotecting.");

static PyObject *parse(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "parse takes 2 arguments");
        return NULL;
    }
    long ids[ID_COUNT];
    if (read_ids(args[1], ids) < 0)
        return NULL;
    Py_buffer data;
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *result = parse_clear(data.buf, data.len, ids);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef methods[] = {
    {"receive", (PyCFunction)(void (*)(void))receive, METH_FASTCALL, receive_doc},
    {"parse", (PyCFunction)(void (*)(void))parse, METH_FASTCALL, parse_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "bridge.rtp_receive_native",
    "One received SRTP packet unprotected and parsed in one call.", -1, methods,
};

PyMODINIT_FUNC PyInit_rtp_receive_native(void) {
    for (int i = 0; i < ID_COUNT; i++) {
        if (id_attributes[i] == NULL
            && (id_attributes[i] = PyUnicode_InternFromString(id_names[i])) == NULL)
            return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "MAX_PACKET", MAX_PACKET) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

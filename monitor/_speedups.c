/* Compiled forms of six pure functions of monitor/rules.py and one of monitor/dedupe.py, which
 * are the reference they must agree with on every input (tests/test_speedups.py checks that
 * they do):
 *
 *   sentence(text, start, end, titles)         is  rules._sentence_py(text, start, end)
 *   written(original, fold_marks, orig_marks, spans)  is  rules._written_py(...)
 *   lower_collapsed(text, start, end, fold_at, fold_marks, orig_marks)
 *                                               is  rules._lower_collapsed_py(...)
 *   scan_ascii(matches, pattern_of, shift_of, right_edges, word_chars, folded, ends)
 *                        is  rules._Index._scan over rules._Index._ascii_occurrences
 *   spaced(original, kinds, neutral)            is  rules._spaced_py(original, neutral, keep)
 *                                               with kinds = rules._kind_table(neutral, keep)
 *   topic_words(hits, original, fold_marks, orig_marks)
 *                                               is  rules._topic_words_py(hits, folded)
 *   min_hashes(folded, width, bins, person, empty)
 *                                               is  dedupe._min_hashes_py(folded)
 *
 * The first six are the per-character and per-sentence work of matching that costs the most in
 * Python beside the automaton's scan; the last is a text fingerprint's words, shingles and their
 * hashes. Built when a C compiler is there (the build is optional); without it rules.py and
 * dedupe.py use the Python forms, with the same results.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define SENTENCE_MAX 300
#define LOOK_BACK 300
#define ELLIPSIS 0x2026

/* --- characters, as the regexes of rules.py class them -------------------------------------- */

static int is_stop(Py_UCS4 c) { return c == '.' || c == '!' || c == '?'; }

/* _LINE_BREAKS: \n \r \v \f \x1c-\x1e \x85 \u2028 \u2029 */
static int is_line_break(Py_UCS4 c)
{
    return c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || (c >= 0x1c && c <= 0x1e) ||
           c == 0x85 || c == 0x2028 || c == 0x2029;
}

/* ["'”’»)\]] after the stops */
static int is_closer(Py_UCS4 c)
{
    return c == '"' || c == '\'' || c == 0x201d || c == 0x2019 || c == 0xbb || c == ')' ||
           c == ']';
}

/* _OPENERS: [\s(\"'“‘] */
static int is_opener(Py_UCS4 c)
{
    return Py_UNICODE_ISSPACE(c) || c == '(' || c == '"' || c == '\'' || c == 0x201c ||
           c == 0x2018;
}

/* [^\W\d_] in a str pattern: a word character (alphanumeric or "_") but no decimal or "_" */
static int is_letter(Py_UCS4 c) { return Py_UNICODE_ISALNUM(c) && !Py_UNICODE_ISDECIMAL(c); }

typedef struct {
    int kind;
    const void *data;
    Py_ssize_t length;
} Text;

static Py_UCS4 at(const Text *t, Py_ssize_t i) { return PyUnicode_READ(t->kind, t->data, i); }

/* --- sentence breaks ------------------------------------------------------------------------ */

/* The next match of _SENTENCE_BREAK at or after `pos`, as re.finditer finds it: its start, and
 * its end in *end; -1 when there is none. A line break alone is one; else a run of ".!?" and the
 * closing quotes or brackets after it, when white space follows (no backtracking can end the
 * match elsewhere: none of those characters is white space). */
static Py_ssize_t next_break(const Text *t, Py_ssize_t pos, Py_ssize_t *end)
{
    for (Py_ssize_t i = pos; i < t->length; i++) {
        Py_UCS4 c = at(t, i);
        if (is_line_break(c)) {
            *end = i + 1;
            return i;
        }
        if (!is_stop(c))
            continue;
        Py_ssize_t j = i + 1;
        while (j < t->length && is_stop(at(t, j)))
            j++;
        Py_ssize_t k = j;
        while (k < t->length && is_closer(at(t, k)))
            k++;
        if (k < t->length && Py_UNICODE_ISSPACE(at(t, k))) {
            *end = k;
            return i;
        }
        i = j - 1; /* every start inside the run fails the same way */
    }
    return -1;
}

/* _ends_sentence: whether the break [start, end) really ends a sentence. -1 on error. */
static int ends_sentence(const Text *t, PyObject *text, Py_ssize_t start, Py_ssize_t end,
                         PyObject *titles)
{
    Py_UCS4 mark = at(t, start);
    if (!is_stop(mark))
        return 1; /* a line break */
    /* The first character after the break that is no white space, within 20. */
    Py_ssize_t stop = end + 20 < t->length ? end + 20 : t->length;
    for (Py_ssize_t q = end; q < stop; q++) {
        Py_UCS4 c = at(t, q);
        if (Py_UNICODE_ISSPACE(c))
            continue;
        if (Py_UNICODE_ISLOWER(c) || Py_UNICODE_ISDIGIT(c))
            return 0; /* "Sept. 28", "approx. five" */
        break;
    }
    if (mark != '.' || (end - start >= 2 && at(t, start + 1) == '.'))
        return 1;
    /* The word before the period: after the last opener of the 12 characters before it. */
    Py_ssize_t window = start - 12 > 0 ? start - 12 : 0;
    Py_ssize_t word = start;
    while (word > window && !is_opener(at(t, word - 1)))
        word--;
    Py_ssize_t length = start - word;
    if (length % 2 == 1) { /* initials: (letter ".")* letter */
        int initials = 1;
        for (Py_ssize_t i = 0; i < length && initials; i++) {
            Py_UCS4 c = at(t, word + i);
            initials = i % 2 == 0 ? is_letter(c) : c == '.';
        }
        if (initials)
            return 0;
    }
    /* A title ("Dr", "Gen"): none is over 4 characters, and case folding never shortens. */
    if (length >= 1 && length <= 4) {
        PyObject *piece = PyUnicode_Substring(text, word, start);
        if (piece == NULL)
            return -1;
        PyObject *folded = PyObject_CallMethod(piece, "casefold", NULL);
        Py_DECREF(piece);
        if (folded == NULL)
            return -1;
        int title = PySet_Contains(titles, folded);
        Py_DECREF(folded);
        if (title < 0)
            return -1;
        if (title)
            return 0;
    }
    return 1;
}

/* _sentence_bounds: *first, *last of the sentence around [start, end). -1 on error. */
static int sentence_bounds(const Text *t, PyObject *text, Py_ssize_t start, Py_ssize_t end,
                           PyObject *titles, Py_ssize_t *first, Py_ssize_t *last)
{
    Py_ssize_t look_back = LOOK_BACK;
    Py_ssize_t capacity = 16;
    /* The breaks before the hit, as (start, end) pairs: room for `capacity` of them. */
    Py_ssize_t *before = PyMem_New(Py_ssize_t, 2 * capacity);
    if (before == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (;;) {
        Py_ssize_t origin = 0;
        if (start > look_back) { /* just after the last space before start - look_back */
            origin = start - look_back;
            while (origin > 0 && at(t, origin - 1) != ' ')
                origin--;
        }
        Py_ssize_t count = 0;
        *last = t->length;
        Py_ssize_t brk_end, pos = origin, brk;
        while ((brk = next_break(t, pos, &brk_end)) >= 0) {
            pos = brk_end;
            if (brk_end <= start) {
                if (count == capacity) {
                    capacity *= 2;
                    Py_ssize_t *grown = PyMem_Resize(before, Py_ssize_t, 2 * capacity);
                    if (grown == NULL) {
                        PyMem_Free(before);
                        PyErr_NoMemory();
                        return -1;
                    }
                    before = grown;
                }
                before[2 * count] = brk;
                before[2 * count + 1] = brk_end;
                count++;
                continue;
            }
            if (brk >= end) {
                int ends = ends_sentence(t, text, brk, brk_end, titles);
                if (ends < 0)
                    goto error;
                if (ends) {
                    *last = brk_end;
                    break;
                }
            }
        }
        for (Py_ssize_t i = count - 1; i >= 0; i--) {
            int ends = ends_sentence(t, text, before[2 * i], before[2 * i + 1], titles);
            if (ends < 0)
                goto error;
            if (ends) {
                *first = before[2 * i + 1];
                PyMem_Free(before);
                return 0;
            }
        }
        if (origin == 0) {
            *first = 0;
            PyMem_Free(before);
            return 0;
        }
        look_back *= 4;
    }
error:
    PyMem_Free(before);
    return -1;
}

/* --- the sentence as reported --------------------------------------------------------------- */

typedef struct {
    Py_UCS4 *chars;
    Py_ssize_t length;
} Piece;

/* text[from:to] with each run of white space one space (_one_space), into piece->chars. */
static void one_space(const Text *t, Py_ssize_t from, Py_ssize_t to, Piece *piece)
{
    Py_ssize_t n = 0;
    int in_space = 0;
    for (Py_ssize_t i = from; i < to; i++) {
        Py_UCS4 c = at(t, i);
        if (Py_UNICODE_ISSPACE(c)) {
            if (!in_space)
                piece->chars[n++] = ' ';
            in_space = 1;
        } else {
            piece->chars[n++] = c;
            in_space = 0;
        }
    }
    piece->length = n;
}

/* str.lstrip() and str.rstrip() of a piece after one_space: at most one space at each end. */
static void lstrip_space(Piece *piece)
{
    if (piece->length && piece->chars[0] == ' ') {
        piece->chars++;
        piece->length--;
    }
}

static void rstrip_space(Piece *piece)
{
    if (piece->length && piece->chars[piece->length - 1] == ' ')
        piece->length--;
}

static Py_ssize_t find_space(const Py_UCS4 *chars, Py_ssize_t from, Py_ssize_t to)
{
    for (Py_ssize_t i = from; i < to; i++)
        if (chars[i] == ' ')
            return i;
    return -1;
}

static Py_ssize_t rfind_space(const Py_UCS4 *chars, Py_ssize_t from, Py_ssize_t to)
{
    for (Py_ssize_t i = to - 1; i >= from; i--)
        if (chars[i] == ' ')
            return i;
    return -1;
}

/* _clip(before, hit, after) into out (room for all three and two ellipses); its length. After
 * one_space the only white space left is " ". */
static Py_ssize_t clip(const Piece *before, const Piece *hit, const Piece *after, Py_UCS4 *out)
{
    Py_ssize_t n = 0;
    if (hit->length >= SENTENCE_MAX) {
        memcpy(out, hit->chars, SENTENCE_MAX * sizeof(Py_UCS4));
        out[SENTENCE_MAX] = ELLIPSIS;
        return SENTENCE_MAX + 1;
    }
    Py_ssize_t room = SENTENCE_MAX - hit->length;
    Py_ssize_t b_from = 0, a_to = after->length;
    int b_cut = 0, a_cut = 0;
    if (before->length + after->length > room) {
        Py_ssize_t share = room / 2 > room - after->length ? room / 2 : room - after->length;
        Py_ssize_t keep_before = before->length < share ? before->length : share;
        Py_ssize_t keep_after =
            after->length < room - keep_before ? after->length : room - keep_before;
        if (keep_before < before->length) {
            b_from = before->length - keep_before;
            Py_ssize_t space = find_space(before->chars, b_from, before->length);
            if (before->chars[b_from - 1] != ' ' && space >= 0)
                b_from = space + 1;
            b_cut = 1;
        }
        if (keep_after < after->length) {
            a_to = keep_after;
            Py_ssize_t space = rfind_space(after->chars, 0, a_to);
            if (after->chars[keep_after] != ' ' && space >= 0)
                a_to = space;
            a_cut = 1;
        }
    }
    if (b_cut)
        out[n++] = ELLIPSIS;
    memcpy(out + n, before->chars + b_from, (before->length - b_from) * sizeof(Py_UCS4));
    n += before->length - b_from;
    memcpy(out + n, hit->chars, hit->length * sizeof(Py_UCS4));
    n += hit->length;
    memcpy(out + n, after->chars, a_to * sizeof(Py_UCS4));
    n += a_to;
    if (a_cut)
        out[n++] = ELLIPSIS;
    return n;
}

static PyObject *sentence(PyObject *module, PyObject *args)
{
    PyObject *text, *titles;
    Py_ssize_t start, end;
    if (!PyArg_ParseTuple(args, "UnnO!:sentence", &text, &start, &end, &PyFrozenSet_Type,
                          &titles))
        return NULL;
    Text t = {PyUnicode_KIND(text), PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text)};
    if (start < 0 || end < start || end > t.length) {
        PyErr_SetString(PyExc_ValueError, "sentence: the hit is not within the text");
        return NULL;
    }
    Py_ssize_t first, last;
    if (sentence_bounds(&t, text, start, end, titles, &first, &last) < 0)
        return NULL;
    /* One buffer: the three pieces (span characters at most), then the result (at most all
     * three and two ellipses, or SENTENCE_MAX and one). */
    Py_ssize_t span = last - first;
    Py_UCS4 *buffer = PyMem_New(Py_UCS4, 2 * span + SENTENCE_MAX + 2);
    if (buffer == NULL)
        return PyErr_NoMemory();
    Piece before = {buffer, 0}, hit, after;
    one_space(&t, first, start, &before);
    lstrip_space(&before);
    hit.chars = before.chars + before.length;
    one_space(&t, start, end, &hit);
    lstrip_space(&hit);
    rstrip_space(&hit);
    after.chars = hit.chars + hit.length;
    one_space(&t, end, last, &after);
    rstrip_space(&after);
    Py_UCS4 *out = buffer + span;
    Py_ssize_t length = clip(&before, &hit, &after, out);
    PyObject *result = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, out, length);
    PyMem_Free(buffer);
    return result;
}

/* --- folded offsets back to the written text ------------------------------------------------ */

/* marks[i] as a C integer; the lists come from _Folded, ints all. */
static int read_marks(PyObject *list, Py_ssize_t **marks, Py_ssize_t *count)
{
    *count = PyList_GET_SIZE(list);
    *marks = PyMem_New(Py_ssize_t, *count);
    if (*marks == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < *count; i++) {
        Py_ssize_t value = PyLong_AsSsize_t(PyList_GET_ITEM(list, i));
        if (value == -1 && PyErr_Occurred()) {
            PyMem_Free(*marks);
            *marks = NULL;
            return -1;
        }
        (*marks)[i] = value;
    }
    return 0;
}

/* The original offset of folded `offset` (_Folded.original_offset). */
static Py_ssize_t original_offset(const Py_ssize_t *fold_marks, const Py_ssize_t *orig_marks,
                                  Py_ssize_t count, Py_ssize_t offset)
{
    Py_ssize_t low = 0, high = count; /* bisect_right(fold_marks, offset) - 1 */
    while (low < high) {
        Py_ssize_t middle = (low + high) / 2;
        if (offset < fold_marks[middle])
            high = middle;
        else
            low = middle + 1;
    }
    Py_ssize_t mark = low - 1;
    /* -1 only for a negative offset (the first mark is 0): indexed from the end, as in Python */
    Py_ssize_t from = mark < 0 ? mark + count : mark;
    Py_ssize_t mapped = orig_marks[from] + offset - fold_marks[from];
    if (mark < count - 1 && mapped > orig_marks[mark + 1])
        mapped = orig_marks[mark + 1];
    return mapped;
}

/* A folded text's marks (_Folded._fold_marks and _orig_marks) as C integers. */
typedef struct {
    Py_ssize_t *fold, *orig, count;
} Marks;

/* 0 when the two lists of marks are as many and not none; else -1, with a ValueError that
 * names `caller`. */
static int marks_agree(PyObject *fold_list, PyObject *orig_list, const char *caller)
{
    if (PyList_GET_SIZE(fold_list) == PyList_GET_SIZE(orig_list) && PyList_GET_SIZE(fold_list))
        return 0;
    PyErr_Format(PyExc_ValueError, "%s: the marks differ in number or are none", caller);
    return -1;
}

static void free_marks(Marks *marks)
{
    PyMem_Free(marks->fold);
    PyMem_Free(marks->orig);
    marks->fold = marks->orig = NULL;
}

/* Both lists of marks (checked by marks_agree) into `marks`; -1 on error, nothing held. */
static int read_both_marks(PyObject *fold_list, PyObject *orig_list, Marks *marks)
{
    marks->fold = marks->orig = NULL;
    if (read_marks(fold_list, &marks->fold, &marks->count) < 0 ||
        read_marks(orig_list, &marks->orig, &marks->count) < 0) {
        free_marks(marks);
        return -1;
    }
    return 0;
}

/* The written text of the folded span [start, end): original[start':end'] of their original
 * offsets, clamped as a slice is. */
static PyObject *written_span(PyObject *original, const Marks *marks, Py_ssize_t start,
                              Py_ssize_t end)
{
    start = original_offset(marks->fold, marks->orig, marks->count, start);
    end = original_offset(marks->fold, marks->orig, marks->count, end);
    PySlice_AdjustIndices(PyUnicode_GET_LENGTH(original), &start, &end, 1);
    return PyUnicode_Substring(original, start, end);
}

static PyObject *written(PyObject *module, PyObject *args)
{
    PyObject *original, *fold_list, *orig_list, *spans;
    if (!PyArg_ParseTuple(args, "UO!O!O!:written", &original, &PyList_Type, &fold_list,
                          &PyList_Type, &orig_list, &PyList_Type, &spans))
        return NULL;
    Marks marks;
    if (marks_agree(fold_list, orig_list, "written") < 0 ||
        read_both_marks(fold_list, orig_list, &marks) < 0)
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(spans);
    PyObject *result = PyList_New(n);
    for (Py_ssize_t i = 0; result != NULL && i < n; i++) {
        PyObject *span = PyList_GET_ITEM(spans, i);
        if (!PyTuple_Check(span) || PyTuple_GET_SIZE(span) != 2) {
            PyErr_SetString(PyExc_TypeError, "written: a span is a (start, end) tuple");
            Py_CLEAR(result);
            break;
        }
        Py_ssize_t start = PyLong_AsSsize_t(PyTuple_GET_ITEM(span, 0));
        Py_ssize_t end = PyLong_AsSsize_t(PyTuple_GET_ITEM(span, 1));
        if ((start == -1 || end == -1) && PyErr_Occurred()) {
            Py_CLEAR(result);
            break;
        }
        PyObject *piece = written_span(original, &marks, start, end);
        if (piece == NULL) {
            Py_CLEAR(result);
            break;
        }
        PyList_SET_ITEM(result, i, piece);
    }
    free_marks(&marks);
    return result;
}

/* --- folding between the spots ------------------------------------------------------------ */

/* Appends the marks after a run of spaces: at fold_at in the folded text, orig_at in the
 * original. */
static int add_marks(PyObject *fold_marks, PyObject *orig_marks, Py_ssize_t fold_at,
                     Py_ssize_t orig_at)
{
    PyObject *fold_mark = PyLong_FromSsize_t(fold_at);
    PyObject *orig_mark = PyLong_FromSsize_t(orig_at);
    int failed = fold_mark == NULL || orig_mark == NULL ||
                 PyList_Append(fold_marks, fold_mark) < 0 ||
                 PyList_Append(orig_marks, orig_mark) < 0;
    Py_XDECREF(fold_mark);
    Py_XDECREF(orig_mark);
    return failed ? -1 : 0;
}

/* The loop of `collapse` for one width of source and result (a macro rather than
 * PyUnicode_READ/WRITE per character, which cost as much as the rest of the fold). */
#define COLLAPSE_LOOP(SOURCE, RESULT)                                                          \
    do {                                                                                       \
        const SOURCE *in = (const SOURCE *)t->data;                                            \
        RESULT *out = (RESULT *)PyUnicode_DATA(result);                                        \
        for (Py_ssize_t i = start; i < end;) {                                                 \
            Py_UCS4 c = in[i];                                                                 \
            if (c == ' ' && i + 1 < end && in[i + 1] == ' ') {                                 \
                Py_ssize_t run_end = i + 2;                                                    \
                while (run_end < end && in[run_end] == ' ')                                    \
                    run_end++;                                                                 \
                out[n++] = ' ';                                                                \
                if (add_marks(fold_marks, orig_marks, fold_at + n, orig_at + run_end - start) < \
                    0) {                                                                       \
                    Py_DECREF(result);                                                         \
                    return NULL;                                                               \
                }                                                                              \
                i = run_end;                                                                   \
                continue;                                                                      \
            }                                                                                  \
            out[n++] = (RESULT)(lower && c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);          \
            i++;                                                                               \
        }                                                                                      \
    } while (0)

/* t[start:end] with each run of two spaces or more one space and a mark after each run (the
 * piece being at fold_at in the folded text and at orig_at in the original), as _collapse_runs
 * does; lower-cased on the way when `lower` (an ASCII piece), else copied (a piece str.lower
 * made). `max_char` is the largest character the result holds, as a str must know it: the
 * piece's own (dropping spaces never changes it). */
static PyObject *collapse(const Text *t, Py_ssize_t start, Py_ssize_t end, int lower,
                          Py_UCS4 max_char, Py_ssize_t fold_at, Py_ssize_t orig_at,
                          PyObject *fold_marks, PyObject *orig_marks)
{
    PyObject *result = PyUnicode_New(end - start, max_char);
    if (result == NULL)
        return NULL;
    int kind = PyUnicode_KIND(result);
    Py_ssize_t n = 0;
    if (t->kind == PyUnicode_1BYTE_KIND)
        COLLAPSE_LOOP(Py_UCS1, Py_UCS1);
    else if (t->kind == PyUnicode_2BYTE_KIND && kind == PyUnicode_1BYTE_KIND)
        COLLAPSE_LOOP(Py_UCS2, Py_UCS1);
    else if (t->kind == PyUnicode_2BYTE_KIND)
        COLLAPSE_LOOP(Py_UCS2, Py_UCS2);
    else if (kind == PyUnicode_1BYTE_KIND)
        COLLAPSE_LOOP(Py_UCS4, Py_UCS1);
    else
        COLLAPSE_LOOP(Py_UCS4, Py_UCS4);
    if (n < end - start && PyUnicode_Resize(&result, n) < 0)
        return NULL; /* PyUnicode_Resize released it */
    return result;
}

/* text[start:end] lower-cased (str.lower), each run of two spaces or more one space, with a
 * mark after each run appended to fold_marks and orig_marks: _lower_collapsed_py. */
static PyObject *lower_collapsed(PyObject *module, PyObject *args)
{
    PyObject *text, *fold_marks, *orig_marks;
    Py_ssize_t start, end, fold_at;
    if (!PyArg_ParseTuple(args, "UnnnO!O!:lower_collapsed", &text, &start, &end, &fold_at,
                          &PyList_Type, &fold_marks, &PyList_Type, &orig_marks))
        return NULL;
    PySlice_AdjustIndices(PyUnicode_GET_LENGTH(text), &start, &end, 1);
    if (end < start)
        end = start;
    Text t = {PyUnicode_KIND(text), PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text)};
    int ascii = PyUnicode_IS_ASCII(text);
    if (!ascii) {
        ascii = 1;
        for (Py_ssize_t i = start; i < end && ascii; i++)
            ascii = at(&t, i) <= 0x7f;
    }
    if (ascii)
        return collapse(&t, start, end, 1, 0x7f, fold_at, start, fold_marks, orig_marks);
    /* Beyond ASCII: str.lower first (it may change lengths), then the runs of what it gave,
     * measured in it, as the Python form measures them. */
    PyObject *piece = PyUnicode_Substring(text, start, end);
    if (piece == NULL)
        return NULL;
    PyObject *lowered = PyObject_CallMethod(piece, "lower", NULL);
    Py_DECREF(piece);
    if (lowered == NULL)
        return NULL;
    Text l = {PyUnicode_KIND(lowered), PyUnicode_DATA(lowered), PyUnicode_GET_LENGTH(lowered)};
    PyObject *result = collapse(&l, 0, l.length, 0, PyUnicode_MAX_CHAR_VALUE(lowered), fold_at,
                                start, fold_marks, orig_marks);
    Py_DECREF(lowered);
    return result;
}

/* --- the scan of ASCII text ----------------------------------------------------------------- */

static int item_index(PyObject *list, Py_ssize_t index, Py_ssize_t *value)
{
    if (index < 0 || index >= PyList_GET_SIZE(list)) {
        PyErr_SetString(PyExc_IndexError, "scan_ascii: an index out of range");
        return -1;
    }
    *value = PyLong_AsSsize_t(PyList_GET_ITEM(list, index));
    return *value == -1 && PyErr_Occurred() ? -1 : 0;
}

/* (start, end, whole): built by hand, as Py_BuildValue would read its format each time. */
static PyObject *occurrence_of(Py_ssize_t start, Py_ssize_t end, int whole)
{
    PyObject *occurrence = PyTuple_New(3);
    if (occurrence == NULL)
        return NULL;
    PyObject *start_ = PyLong_FromSsize_t(start), *end_ = PyLong_FromSsize_t(end);
    if (start_ == NULL || end_ == NULL) {
        Py_XDECREF(start_);
        Py_XDECREF(end_);
        Py_DECREF(occurrence);
        return NULL;
    }
    PyTuple_SET_ITEM(occurrence, 0, start_);
    PyTuple_SET_ITEM(occurrence, 1, end_);
    PyTuple_SET_ITEM(occurrence, 2, Py_NewRef(whole ? Py_True : Py_False));
    return occurrence;
}

/* _Index._scan over _Index._ascii_occurrences, from the automaton's matches in the scanned
 * copy: for each field, {pattern: [(start, end, whole), ...]}. */
static PyObject *scan_ascii(PyObject *module, PyObject *args)
{
    PyObject *matches, *pattern_of, *shift_of, *ends;
    Py_buffer right_edges, word_chars;
    const char *folded;
    Py_ssize_t length;
    if (!PyArg_ParseTuple(args, "O!O!O!y*y*s#O!:scan_ascii", &PyList_Type, &matches,
                          &PyList_Type, &pattern_of, &PyList_Type, &shift_of, &right_edges,
                          &word_chars, &folded, &length, &PyList_Type, &ends))
        return NULL;
    PyObject *found = NULL;
    const unsigned char *right = right_edges.buf, *word = word_chars.buf;
    Py_ssize_t fields = PyList_GET_SIZE(ends);
    if (word_chars.len < 128 || fields == 0) {
        PyErr_SetString(PyExc_ValueError, "scan_ascii: a word table of 128, and a field");
        goto done;
    }
    found = PyList_New(fields);
    for (Py_ssize_t i = 0; found != NULL && i < fields; i++) {
        PyObject *in_field = PyDict_New();
        if (in_field == NULL)
            Py_CLEAR(found);
        else
            PyList_SET_ITEM(found, i, in_field);
    }
    if (found == NULL)
        goto done;
    Py_ssize_t field = 0, field_end;
    if (item_index(ends, 0, &field_end) < 0)
        goto failed;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(matches); i++) {
        PyObject *match = PyList_GET_ITEM(matches, i);
        if (!PyTuple_Check(match) || PyTuple_GET_SIZE(match) != 3) {
            PyErr_SetString(PyExc_TypeError, "scan_ascii: a match is (pattern, start, end)");
            goto failed;
        }
        Py_ssize_t index = PyLong_AsSsize_t(PyTuple_GET_ITEM(match, 0));
        Py_ssize_t start = PyLong_AsSsize_t(PyTuple_GET_ITEM(match, 1));
        Py_ssize_t end = PyLong_AsSsize_t(PyTuple_GET_ITEM(match, 2));
        Py_ssize_t pattern, shift;
        if (PyErr_Occurred() || item_index(pattern_of, index, &pattern) < 0 ||
            item_index(shift_of, index, &shift) < 0)
            goto failed;
        start += shift;
        end -= 1; /* the scanned copy has the separator in front */
        if (pattern < 0 || pattern >= right_edges.len) {
            PyErr_SetString(PyExc_IndexError, "scan_ascii: a pattern without its edge");
            goto failed;
        }
        int whole = 1;
        if (right[pattern] && end >= 0 && end < length)
            whole = !word[(unsigned char)folded[end] & 0x7f];
        while (end > field_end && field + 1 < fields) {
            field++;
            if (item_index(ends, field, &field_end) < 0)
                goto failed;
        }
        PyObject *in_field = PyList_GET_ITEM(found, field);
        PyObject *key = PyLong_FromSsize_t(pattern);
        PyObject *occurrence = occurrence_of(start, end, whole);
        PyObject *list = key == NULL ? NULL : PyDict_GetItemWithError(in_field, key);
        int failed = key == NULL || occurrence == NULL || (list == NULL && PyErr_Occurred());
        if (!failed && list == NULL) {
            list = PyList_New(0);
            failed = list == NULL || PyDict_SetItem(in_field, key, list) < 0;
            Py_XDECREF(list); /* the dict holds it */
        }
        failed = failed || PyList_Append(list, occurrence) < 0;
        Py_XDECREF(key);
        Py_XDECREF(occurrence);
        if (failed)
            goto failed;
    }
    goto done;
failed:
    Py_CLEAR(found);
done:
    PyBuffer_Release(&right_edges);
    PyBuffer_Release(&word_chars);
    return found;
}

/* --- the spaced copy ------------------------------------------------------------------------ */

/* What to do with a character, as rules._kind_table says (rules._PLAIN, _SPACE, ...). */
enum { PLAIN, SPACE, APOSTROPHE, APART, NO_WORD, NEUTRAL };

/* The loop of `spaced` for one width of text: each character's replacement into `out`, each
 * one that folds apart into the set `apart` (once: `last_apart` skips the set for a letter
 * repeated, as "é" is in a French text). */
#define SPACED_LOOP(SOURCE)                                                                    \
    do {                                                                                       \
        const SOURCE *in = (const SOURCE *)PyUnicode_DATA(original);                           \
        for (Py_ssize_t i = 0; i < length; i++) {                                              \
            Py_UCS4 c = in[i];                                                                 \
            int kind = c > 0xffff ? APART : kinds[c];                                          \
            Py_UCS4 replacement = c;                                                           \
            if (kind == SPACE)                                                                 \
                replacement = ' ';                                                             \
            else if (kind == APOSTROPHE)                                                       \
                replacement = '\'';                                                            \
            else if (kind == NEUTRAL)                                                          \
                replacement = neutral_char;                                                    \
            else if (kind == APART && c != last_apart) {                                       \
                PyObject *char_ = PyUnicode_FromOrdinal(c);                                    \
                int failed = char_ == NULL || PySet_Add(apart, char_) < 0;                     \
                Py_XDECREF(char_);                                                             \
                if (failed)                                                                    \
                    goto done;                                                                 \
                last_apart = c;                                                                \
            }                                                                                  \
            changed |= replacement != c;                                                       \
            out[i] = replacement;                                                              \
        }                                                                                      \
    } while (0)

/* (the copy of original, the set of its characters that fold apart): rules._spaced_py, with
 * `kinds` the kind of each character of the Basic Multilingual Plane for its neutral and keep
 * (rules._kind_table). The copy is `original` itself when nothing in it is replaced. */
static PyObject *spaced(PyObject *module, PyObject *args)
{
    PyObject *original, *neutral;
    Py_buffer kinds_buffer;
    if (!PyArg_ParseTuple(args, "Uy*U:spaced", &original, &kinds_buffer, &neutral))
        return NULL;
    PyObject *apart = NULL, *copy = NULL, *result = NULL;
    Py_UCS4 *out = NULL;
    const unsigned char *kinds = kinds_buffer.buf;
    Py_ssize_t length = PyUnicode_GET_LENGTH(original);
    if (kinds_buffer.len != 0x10000 || PyUnicode_GET_LENGTH(neutral) > 1) {
        PyErr_SetString(PyExc_ValueError, "spaced: a kind for each of 0x10000 characters, and "
                                          "a neutral character or none");
        goto done;
    }
    Py_UCS4 neutral_char = PyUnicode_GET_LENGTH(neutral) ? PyUnicode_READ_CHAR(neutral, 0) : 0;
    apart = PySet_New(NULL);
    out = PyMem_New(Py_UCS4, length ? length : 1);
    if (apart == NULL || out == NULL) {
        if (out == NULL)
            PyErr_NoMemory();
        goto done;
    }
    int changed = 0;
    Py_UCS4 last_apart = 0x110000; /* no character */
    switch (PyUnicode_KIND(original)) {
    case PyUnicode_1BYTE_KIND:
        SPACED_LOOP(Py_UCS1);
        break;
    case PyUnicode_2BYTE_KIND:
        SPACED_LOOP(Py_UCS2);
        break;
    default:
        SPACED_LOOP(Py_UCS4);
    }
    /* The copy is made as narrow as its characters allow, as every str is. */
    copy = changed ? PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, out, length)
                   : Py_NewRef(original);
    if (copy != NULL)
        result = PyTuple_Pack(2, copy, apart);
done:
    Py_XDECREF(copy);
    Py_XDECREF(apart);
    PyMem_Free(out);
    PyBuffer_Release(&kinds_buffer);
    return result;
}

/* --- a topic's words ------------------------------------------------------------------------ */

typedef struct {
    Py_ssize_t start, end;
    /* Borrowed from the hits: an exact str, whose hashing, comparing and case folding run no
     * Python code that could change the hits meanwhile. */
    PyObject *text;
} Hit;

/* By span, then by text, as Python sorts (span, text) pairs. Comparing two exact str runs no
 * Python code and cannot fail. */
static int hit_order(const void *a, const void *b)
{
    const Hit *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return PyUnicode_Compare(x->text, y->text);
}

/* `text` with each run of white space one space, and none at either end: rules._collapse. */
static PyObject *collapsed(PyObject *text)
{
    Text t = {PyUnicode_KIND(text), PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text)};
    int clean = 1; /* white space only as single spaces inside, as most words are */
    for (Py_ssize_t i = 0; i < t.length && clean; i++) {
        Py_UCS4 c = at(&t, i);
        if (Py_UNICODE_ISSPACE(c))
            clean = c == ' ' && i > 0 && i < t.length - 1 && at(&t, i + 1) != ' ';
    }
    if (clean)
        return Py_NewRef(text);
    Py_UCS4 *chars = PyMem_New(Py_UCS4, t.length ? t.length : 1);
    if (chars == NULL)
        return PyErr_NoMemory();
    Piece piece = {chars, 0};
    one_space(&t, 0, t.length, &piece);
    lstrip_space(&piece);
    rstrip_space(&piece);
    PyObject *result = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, piece.chars, piece.length);
    PyMem_Free(chars);
    return result;
}

/* Reads hits, a list of (spans, written) pairs, into an array of `*count` Hits. */
static Hit *read_hits(PyObject *hits, Py_ssize_t *count)
{
    *count = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(hits); i++) {
        PyObject *pair = PyList_GET_ITEM(hits, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 ||
            !PyList_Check(PyTuple_GET_ITEM(pair, 0)) || !PyList_Check(PyTuple_GET_ITEM(pair, 1)) ||
            PyList_GET_SIZE(PyTuple_GET_ITEM(pair, 0)) !=
                PyList_GET_SIZE(PyTuple_GET_ITEM(pair, 1))) {
            PyErr_SetString(PyExc_ValueError,
                            "topic_words: a hit is (spans, written), lists of one length");
            return NULL;
        }
        *count += PyList_GET_SIZE(PyTuple_GET_ITEM(pair, 0));
    }
    Hit *all = PyMem_New(Hit, *count ? *count : 1);
    if (all == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(hits); i++) {
        PyObject *spans = PyTuple_GET_ITEM(PyList_GET_ITEM(hits, i), 0);
        PyObject *texts = PyTuple_GET_ITEM(PyList_GET_ITEM(hits, i), 1);
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(spans); j++, n++) {
            PyObject *span = PyList_GET_ITEM(spans, j);
            PyObject *text = PyList_GET_ITEM(texts, j);
            if (!PyTuple_Check(span) || PyTuple_GET_SIZE(span) != 2 ||
                !PyUnicode_CheckExact(text)) {
                PyErr_SetString(PyExc_TypeError,
                                "topic_words: a span is (start, end), its text a str");
                PyMem_Free(all);
                return NULL;
            }
            all[n].start = PyLong_AsSsize_t(PyTuple_GET_ITEM(span, 0));
            all[n].end = PyLong_AsSsize_t(PyTuple_GET_ITEM(span, 1));
            all[n].text = text;
            if (PyErr_Occurred()) {
                PyMem_Free(all);
                return NULL;
            }
        }
    }
    return all;
}

/* Appends collapsed(text) to words unless a word of the same case fold is there. */
static int add_word(PyObject *text, PyObject *words, PyObject *folds)
{
    PyObject *word = collapsed(text);
    if (word == NULL)
        return -1;
    PyObject *fold = PyObject_CallMethod(word, "casefold", NULL);
    int seen = fold == NULL ? -1 : PySet_Contains(folds, fold);
    int failed = seen < 0 ||
                 (!seen && (PySet_Add(folds, fold) < 0 || PyList_Append(words, word) < 0));
    Py_XDECREF(fold);
    Py_DECREF(word);
    return failed ? -1 : 0;
}

/* (the first span, the words): rules._topic_words_py. The hits of several terms are merged in
 * order, overlapping ones joined and their text read anew through the marks (rules._merge). */
static PyObject *topic_words(PyObject *module, PyObject *args)
{
    PyObject *hits, *original, *fold_list, *orig_list;
    if (!PyArg_ParseTuple(args, "O!UO!O!:topic_words", &PyList_Type, &hits, &original,
                          &PyList_Type, &fold_list, &PyList_Type, &orig_list))
        return NULL;
    if (marks_agree(fold_list, orig_list, "topic_words") < 0)
        return NULL;
    Py_ssize_t count;
    Hit *all = read_hits(hits, &count);
    if (all == NULL)
        return NULL;
    PyObject *result = NULL, *words = NULL, *texts = NULL, *folds = NULL;
    Marks marks = {NULL, NULL, 0}; /* read at the first joined span */
    char *joined = PyMem_Calloc(count ? count : 1, 1);
    if (joined == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (count == 0) {
        PyErr_SetString(PyExc_IndexError, "topic_words: no hit");
        goto done;
    }
    Py_ssize_t kept = count;
    if (PyList_GET_SIZE(hits) > 1) { /* one term's hits are in order and never overlap */
        qsort(all, count, sizeof(Hit), hit_order);
        kept = 0;
        for (Py_ssize_t i = 0; i < count; i++) {
            if (kept && all[i].start < all[kept - 1].end) {
                if (all[i].end > all[kept - 1].end)
                    all[kept - 1].end = all[i].end;
                joined[kept - 1] = 1;
            } else {
                all[kept++] = all[i];
            }
        }
    }
    words = PyList_New(0);
    texts = PySet_New(NULL); /* the texts added, as most repeat */
    folds = PySet_New(NULL);
    if (words == NULL || texts == NULL || folds == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < kept; i++) {
        PyObject *text;
        if (joined[i]) {
            if (marks.fold == NULL && read_both_marks(fold_list, orig_list, &marks) < 0)
                goto done;
            text = written_span(original, &marks, all[i].start, all[i].end);
        } else {
            text = Py_NewRef(all[i].text);
        }
        int repeated = text == NULL ? -1 : PySet_Contains(texts, text);
        int failed = repeated < 0 ||
                     (!repeated && (PySet_Add(texts, text) < 0 || add_word(text, words, folds) < 0));
        Py_XDECREF(text);
        if (failed)
            goto done;
    }
    result = Py_BuildValue("((nn)N)", all[0].start, all[0].end, PyList_AsTuple(words));
done:
    Py_XDECREF(words);
    Py_XDECREF(texts);
    Py_XDECREF(folds);
    free_marks(&marks);
    PyMem_Free(joined);
    PyMem_Free(all);
    return result;
}

/* --- min_hashes: the shingle hashing of dedupe.text_fingerprint --------------------------- */

/* BLAKE2b (RFC 7693) for messages hashed whole, with a digest of up to 8 bytes and a
 * personalisation: what hashlib.blake2b(data, digest_size=8, person=P).digest() gives, read
 * as a little-endian integer, is the first word of the state. */

static const uint64_t BLAKE2B_IV[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
    0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

/* The message schedule of each of the 12 rounds, as RFC 7693 lists it: rounds 10 and 11 repeat
 * rounds 0 and 1. Written out rather than indexed `r % 10`, which made the hashing a third
 * slower (the compiler no longer resolves each round's indices). */
static const uint8_t BLAKE2B_SIGMA[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
};

static uint64_t rotr64(uint64_t x, int n) { return (x >> n) | (x << (64 - n)); }

static uint64_t load64(const uint8_t *p)
{
    uint64_t x = 0;
    for (int i = 7; i >= 0; i--)
        x = (x << 8) | p[i];
    return x;
}

#define BLAKE2B_G(a, b, c, d, x, y)                                                             \
    do {                                                                                       \
        v[a] = v[a] + v[b] + (x);                                                              \
        v[d] = rotr64(v[d] ^ v[a], 32);                                                        \
        v[c] = v[c] + v[d];                                                                    \
        v[b] = rotr64(v[b] ^ v[c], 24);                                                        \
        v[a] = v[a] + v[b] + (y);                                                              \
        v[d] = rotr64(v[d] ^ v[a], 16);                                                        \
        v[c] = v[c] + v[d];                                                                    \
        v[b] = rotr64(v[b] ^ v[c], 63);                                                        \
    } while (0)

/* One block of 128 bytes into the state `h`; `bytes` is the count hashed once it is in. */
static void blake2b_compress(uint64_t h[8], const uint8_t block[128], uint64_t bytes, int last)
{
    uint64_t v[16], m[16];
    for (int i = 0; i < 16; i++)
        m[i] = load64(block + 8 * i);
    for (int i = 0; i < 8; i++) {
        v[i] = h[i];
        v[i + 8] = BLAKE2B_IV[i];
    }
    v[12] ^= bytes; /* messages here are far below 2**64 bytes: the high word stays 0 */
    if (last)
        v[14] = ~v[14];
    for (int r = 0; r < 12; r++) {
        const uint8_t *s = BLAKE2B_SIGMA[r];
        BLAKE2B_G(0, 4, 8, 12, m[s[0]], m[s[1]]);
        BLAKE2B_G(1, 5, 9, 13, m[s[2]], m[s[3]]);
        BLAKE2B_G(2, 6, 10, 14, m[s[4]], m[s[5]]);
        BLAKE2B_G(3, 7, 11, 15, m[s[6]], m[s[7]]);
        BLAKE2B_G(0, 5, 10, 15, m[s[8]], m[s[9]]);
        BLAKE2B_G(1, 6, 11, 12, m[s[10]], m[s[11]]);
        BLAKE2B_G(2, 7, 8, 13, m[s[12]], m[s[13]]);
        BLAKE2B_G(3, 4, 9, 14, m[s[14]], m[s[15]]);
    }
    for (int i = 0; i < 8; i++)
        h[i] ^= v[i] ^ v[i + 8];
}

/* The state before any message: the parameter block of an unkeyed hash of `digest_size` bytes
 * with the 16-byte personalisation `person`, folded into the IV. */
static void blake2b_start(uint64_t h[8], int digest_size, const uint8_t person[16])
{
    for (int i = 0; i < 8; i++)
        h[i] = BLAKE2B_IV[i];
    h[0] ^= 0x01010000ULL ^ (uint64_t)digest_size; /* fanout 1, depth 1, no key */
    h[6] ^= load64(person);
    h[7] ^= load64(person + 8);
}

/* The 8-byte digest of `data`, as a little-endian integer, from the state `start`. */
static uint64_t blake2b_first_word(const uint64_t start[8], const uint8_t *data, Py_ssize_t size)
{
    uint64_t h[8];
    uint8_t block[128];
    memcpy(h, start, sizeof h);
    Py_ssize_t done = 0;
    while (size - done > 128) {
        blake2b_compress(h, data + done, (uint64_t)(done + 128), 0);
        done += 128;
    }
    memset(block, 0, sizeof block);
    memcpy(block, data + done, (size_t)(size - done));
    blake2b_compress(h, block, (uint64_t)size, 1);
    return h[0];
}

/* dedupe._WORD: a kana or CJK ideograph alone, else a run of letters and digits ("_" is not
 * one). The regex's \w is Py_UNICODE_ISALNUM or "_", as _sre has it. */
static int is_cjk(Py_UCS4 c)
{
    return (c >= 0x3040 && c <= 0x30ff) || (c >= 0x3400 && c <= 0x4dbf) ||
           (c >= 0x4e00 && c <= 0x9fff) || (c >= 0xf900 && c <= 0xfaff);
}

static int in_word_run(Py_UCS4 c) { return Py_UNICODE_ISALNUM(c) && !is_cjk(c); }

/* c's UTF-8 bytes at out; how many */
static Py_ssize_t put_utf8(Py_UCS4 c, char *out)
{
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xc0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xe0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3f));
        out[2] = (char)(0x80 | (c & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3f));
    out[3] = (char)(0x80 | (c & 0x3f));
    return 4;
}

typedef struct {
    Py_ssize_t at; /* its UTF-8 bytes in the words' buffer */
    Py_ssize_t size;
} Word;

/* The words of `text` as _WORD.findall finds them, their UTF-8 one after another in `utf8`,
 * each followed by a space (at most 5 bytes a character): the shingle of words i to j is then
 * the bytes from word i's start to word j's end, as " ".join writes it. How many words. */
static Py_ssize_t find_words(const Text *t, Word *words, char *utf8)
{
    Py_ssize_t count = 0, used = 0, i = 0;
    while (i < t->length) {
        Py_UCS4 c = at(t, i);
        if (!is_cjk(c) && !in_word_run(c)) {
            i++;
            continue;
        }
        words[count].at = used;
        if (is_cjk(c)) {
            used += put_utf8(c, utf8 + used);
            i++;
        } else {
            for (; i < t->length && in_word_run(c = at(t, i)); i++)
                used += put_utf8(c, utf8 + used);
        }
        words[count].size = used - words[count].at;
        utf8[used++] = ' ';
        count++;
    }
    return count;
}

/* The UTF-8 of the shingle of `width` words from word `first` (see find_words). */
static const char *shingle_at(const Word *words, const char *utf8, Py_ssize_t first,
                              Py_ssize_t width, Py_ssize_t *size)
{
    const Word *last = &words[first + width - 1];
    *size = last->at + last->size - words[first].at;
    return utf8 + words[first].at;
}

static PyObject *min_hashes(PyObject *module, PyObject *args)
{
    PyObject *text_object, *empty;
    Py_ssize_t width, bins;
    Py_buffer person;
    if (!PyArg_ParseTuple(args, "Unny*O", &text_object, &width, &bins, &person, &empty))
        return NULL;
    PyObject *result = NULL, *values = NULL;
    Word *words = NULL;
    char *utf8 = NULL;
    Py_ssize_t *slots = NULL;
    uint64_t *hashes = NULL, *mins = NULL;
    unsigned char *filled = NULL;
    if (width < 1 || bins < 1 || person.len > 16) {
        PyErr_SetString(PyExc_ValueError,
                        "width and bins must be positive, person 16 bytes at most");
        goto done;
    }
    Text t = {PyUnicode_KIND(text_object), PyUnicode_DATA(text_object),
              PyUnicode_GET_LENGTH(text_object)};
    /* at most a word per character; 4 bytes of UTF-8 a character, and a space a word */
    words = t.length < PY_SSIZE_T_MAX / 5 ? PyMem_New(Word, t.length + 1) : NULL;
    utf8 = words != NULL ? PyMem_Malloc((size_t)(5 * t.length + 1)) : NULL;
    mins = PyMem_New(uint64_t, bins);
    filled = PyMem_Calloc((size_t)bins, 1);
    if (words == NULL || utf8 == NULL || mins == NULL || filled == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t count = find_words(&t, words, utf8);
    Py_ssize_t shingles = count >= width ? count - width + 1 : 0;
    /* A table of the distinct shingles seen, by hash: a power of two over twice their number,
     * so that probes stay short. A slot holds a shingle's first word + 1 (0: empty). */
    Py_ssize_t capacity = 16;
    while (capacity < 2 * shingles)
        capacity *= 2;
    slots = PyMem_Calloc((size_t)capacity, sizeof(Py_ssize_t));
    hashes = PyMem_New(uint64_t, capacity);
    if (slots == NULL || hashes == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    uint8_t person16[16] = {0};
    memcpy(person16, person.buf, (size_t)person.len);
    uint64_t start[8];
    blake2b_start(start, 8, person16);
    Py_ssize_t distinct = 0;
    for (Py_ssize_t i = 0; i < shingles; i++) {
        Py_ssize_t size, other_size;
        const char *shingle = shingle_at(words, utf8, i, width, &size);
        uint64_t value = blake2b_first_word(start, (const uint8_t *)shingle, size);
        size_t mask = (size_t)capacity - 1, slot = (size_t)value & mask;
        int seen = 0; /* a shingle seen before changes nothing, but counting needs its words */
        while (slots[slot] && !seen) {
            if (hashes[slot] == value) {
                const char *other = shingle_at(words, utf8, slots[slot] - 1, width, &other_size);
                seen = other_size == size && memcmp(other, shingle, (size_t)size) == 0;
            }
            slot = (slot + 1) & mask;
        }
        if (seen)
            continue;
        slots[slot] = i + 1;
        hashes[slot] = value;
        distinct++;
        Py_ssize_t bin = (Py_ssize_t)(value % (uint64_t)bins);
        if (!filled[bin] || value < mins[bin]) {
            mins[bin] = value;
            filled[bin] = 1;
        }
    }
    values = PyList_New(bins);
    if (values == NULL)
        goto done;
    for (Py_ssize_t b = 0; b < bins; b++) {
        PyObject *item = filled[b] ? PyLong_FromUnsignedLongLong(mins[b]) : Py_NewRef(empty);
        if (item == NULL)
            goto done;
        PyList_SET_ITEM(values, b, item);
    }
    result = Py_BuildValue("(Onn)", values, distinct, count);
done:
    Py_XDECREF(values);
    PyBuffer_Release(&person);
    PyMem_Free(words);
    PyMem_Free(utf8);
    PyMem_Free(mins);
    PyMem_Free(filled);
    PyMem_Free(slots);
    PyMem_Free(hashes);
    return result;
}

static PyMethodDef methods[] = {
    {"min_hashes", min_hashes, METH_VARARGS,
     "min_hashes(folded, width, bins, person, empty) -> dedupe._min_hashes_py(folded): of the "
     "distinct shingles of `width` words, the least hash (BLAKE2b, 8 bytes, personalised) in "
     "each of `bins` bins (`empty` where none fell); how many shingles and words there were."},
    {"topic_words", topic_words, METH_VARARGS,
     "topic_words(hits, original, fold_marks, orig_marks) -> rules._topic_words_py(hits, folded) "
     "of the folded text with that original and those marks."},
    {"spaced", spaced, METH_VARARGS,
     "spaced(original, kinds, neutral) -> rules._spaced_py(original, neutral, keep), with kinds "
     "= rules._kind_table(neutral, keep)."},
    {"scan_ascii", scan_ascii, METH_VARARGS,
     "scan_ascii(matches, pattern_of, shift_of, right_edges, word_chars, folded, ends) -> "
     "rules._Index._scan(folded, ends, the occurrences rules._Index._ascii_occurrences makes "
     "of matches)."},
    {"lower_collapsed", lower_collapsed, METH_VARARGS,
     "lower_collapsed(text, start, end, fold_at, fold_marks, orig_marks) -> "
     "rules._lower_collapsed_py(text, start, end, fold_at, fold_marks, orig_marks)."},
    {"sentence", sentence, METH_VARARGS,
     "sentence(text, start, end, titles) -> the sentence around text[start:end], as "
     "rules._sentence_py reports it."},
    {"written", written, METH_VARARGS,
     "written(original, fold_marks, orig_marks, spans) -> the original text of each folded "
     "span, as rules._Folded.written maps it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "monitor._speedups",
    "Compiled forms of pure functions of rules.py and dedupe.py.",
    -1, methods,
};

PyMODINIT_FUNC PyInit__speedups(void) { return PyModule_Create(&module); }

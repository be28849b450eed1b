/* test_ph_jbuf.c - the phone's adaptive jitter buffer (phone/ph_jbuf.c),
 * driven in virtual time: filling to the target before playing, in-order
 * play, a lost packet rebuilt from the next one's FEC, two lost in a row
 * (concealment, then FEC), reordering, late and duplicate packets, a dry
 * buffer concealing in place, the target following jitter, a burst after a
 * stall played whole (nothing dropped under the hard cap) and its backlog
 * given back in quiet frames (ph_jbuf_squeeze) or, in speech, one frame a
 * second; a long stall bounded by the hard cap; sequence wrap, refusing
 * oversize payloads, a late sound card (backlog before the first pop). */
#include <string.h>

#include "ph_jbuf.h"
#include "tap.h"

static void push(ph_jbuf *jb, uint16_t seq, uint64_t now_us)
{
    uint8_t pay[8];
    memset(pay, (int)(seq & 0xff), sizeof pay);
    ph_jbuf_push(jb, seq, (uint32_t)seq * 960u, pay, sizeof pay, now_us);
}

static ph_jb_kind pop(ph_jbuf *jb, int *byte)
{
    ph_jb_out o;
    ph_jbuf_pop(jb, &o);
    *byte = o.payload ? o.payload[0] : -1;
    return o.kind;
}

int main(void)
{
    ph_jbuf *jb = ph_jbuf_new();
    ph_jb_stats st;
    int b;
    uint64_t t = 1000000;
    uint8_t big[PH_JB_MAX_PAYLOAD + 1] = {0};

    ok(jb, "created");
    ok(pop(jb, &b) == PH_JB_WAIT, "empty: wait (silence)");
    push(jb, 100, t);
    ok(pop(jb, &b) == PH_JB_WAIT, "one frame, target two: still filling");
    push(jb, 101, t += 20000);
    ok(pop(jb, &b) == PH_JB_PLAY && b == 100, "target reached: plays 100");
    ok(pop(jb, &b) == PH_JB_PLAY && b == 101, "then 101");

    /* 102 lost, 103 here: 102 comes from 103's FEC, then 103 itself */
    push(jb, 103, t += 40000);
    ok(pop(jb, &b) == PH_JB_FEC && b == 103, "102 lost: rebuilt from 103's FEC");
    ok(pop(jb, &b) == PH_JB_PLAY && b == 103, "103 plays");

    /* 104 and 105 lost, 106 here: conceal 104, FEC 105, play 106 */
    push(jb, 106, t += 60000);
    ok(pop(jb, &b) == PH_JB_PLC, "104: nothing after it, concealed");
    ok(pop(jb, &b) == PH_JB_FEC && b == 106, "105 from 106's FEC");
    ok(pop(jb, &b) == PH_JB_PLAY && b == 106, "106 plays");

    /* reordered: 108 before 107 */
    push(jb, 108, t += 20000);
    push(jb, 107, t += 1000);
    ok(pop(jb, &b) == PH_JB_PLAY && b == 107, "reordered 107 plays in order");
    ok(pop(jb, &b) == PH_JB_PLAY && b == 108, "then 108");

    /* dry: conceal in place; the late packet then plays, nothing skipped */
    ok(pop(jb, &b) == PH_JB_PLC, "dry: concealed");
    push(jb, 109, t += 60000);
    ok(pop(jb, &b) == PH_JB_PLAY && b == 109, "109, late, still plays (delay grew a frame)");
    push(jb, 109, t += 1000);
    push(jb, 90, t += 1000);
    ph_jbuf_stats_get(jb, &st);
    ok(st.late == 2, "packets before the playout point (109 again, 90) count late");
    ok(st.played == 7 && st.fec == 2 && st.plc == 2, "played/fec/plc counted");

    /* oversize payload refused */
    ph_jbuf_push(jb, 110, 0, big, sizeof big, t);
    ph_jbuf_stats_get(jb, &st);
    ok(st.pushed == 7, "oversize payload refused");

    /* jitter raises the target */
    {
        ph_jbuf *j2 = ph_jbuf_new();
        uint64_t now = 0;
        for (uint16_t s = 0; s < 200; s++) {
            now += (s & 1) ? 5000 : 35000; /* +-15 ms around 20 ms */
            push(j2, s, now);
        }
        ph_jbuf_stats_get(j2, &st);
        ok(st.jitter_ms > 5 && st.target_frames >= 3, "jitter of ~15 ms raises the target above two frames");
        ok(st.target_frames <= 10, "target bounded by 200 ms");
        ph_jbuf_free(j2);
    }

    /* a burst after a stall (300 ms: 15 frames at once): every frame
     * plays, none skipped; the backlog shrinks only when the caller says
     * a frame is quiet, and then by one frame in two */
    {
        ph_jbuf *j3 = ph_jbuf_new();
        uint64_t now = 0;
        bool all = true;
        int expect = 1;
        push(j3, 1, now);
        push(j3, 2, now += 20000);
        ok(pop(j3, &b) == PH_JB_PLAY && b == 1, "stall test: playing");
        now += 300000;
        for (uint16_t s = 2; s < 18; s++)
            push(j3, s, now);
        for (int i = 0; i < 10; i++) /* speech: no squeeze asked */
            if (pop(j3, &b) != PH_JB_PLAY || b != ++expect)
                all = false;
        ph_jbuf_stats_get(j3, &st);
        ok(all && st.skipped == 0 && st.squeezed == 0 && st.plc == 0,
           "burst of 16 frames after a 300 ms stall: all played in order, nothing dropped");
        ok(st.target_frames < 16, "the target is below the burst: a backlog");
        ok(st.depth_frames == 6, "the rest of the burst still buffered (12..17)");
        /* more arrive on time, 10 frames over the target */
        for (uint16_t s = 18; s < 30; s++)
            push(j3, s, now += 20000);
        {
            int squeezed = 0;
            for (int i = 0; i < 10; i++) {
                pop(j3, &b);
                if (ph_jbuf_squeeze(j3))
                    squeezed++;
            }
            ok(squeezed >= 4 && squeezed <= 5, "quiet frames squeezed one in two (4-5 of 10)");
        }
        ph_jbuf_stats_get(j3, &st);
        ok(st.skipped == 0 && st.squeezed >= 4, "squeezes counted apart from skips");
        {
            bool refused = true;
            ph_jbuf *j6 = ph_jbuf_new();
            push(j6, 1, 0);
            push(j6, 2, 20000);
            push(j6, 3, 40000);
            pop(j6, &b);
            pop(j6, &b);
            for (int i = 0; i < 5; i++)
                if (ph_jbuf_squeeze(j6))
                    refused = false;
            ok(refused, "at the target: no squeeze");
            ph_jbuf_free(j6);
        }
        ph_jbuf_free(j3);
    }

    /* a backlog in speech that never pauses: one frame a second at most */
    {
        ph_jbuf *j7 = ph_jbuf_new();
        uint64_t now = 0;
        uint16_t s = 0;
        push(j7, s++, now);
        push(j7, s++, now);
        pop(j7, &b);
        for (int i = 0; i < 10; i++) /* 10 frames of backlog */
            push(j7, s++, now);
        for (int i = 0; i < 150; i++) { /* 3 s in step */
            push(j7, s++, now += 20000);
            pop(j7, &b);
        }
        ph_jbuf_stats_get(j7, &st);
        ok(st.skipped >= 2 && st.skipped <= 3, "speech backlog: 2-3 dropped in 3 s (one a second)");
        ok(st.plc == 0, "and nothing concealed");
        ph_jbuf_free(j7);
    }

    /* a long stall (1 s, and 50 frames arrive at once): the delay is
     * bounded by the hard cap */
    {
        ph_jbuf *j3 = ph_jbuf_new();
        push(j3, 1, 0);
        push(j3, 2, 20000);
        pop(j3, &b);
        for (uint16_t s = 3; s < 53; s++)
            push(j3, s, 1000000);
        ph_jbuf_pop(j3, &(ph_jb_out){0});
        ph_jbuf_stats_get(j3, &st);
        ok(st.depth_frames <= PH_JB_HARD_CAP, "burst of 50 frames: depth within the hard cap");
        ok(st.capped >= 29 && st.capped == st.skipped, "the oldest over the cap dropped, counted capped");
        ph_jbuf_free(j3);
    }

    /* a stall upstream (packets stop while playout goes on): the target
     * rises to the frames played while waiting and is held; it is reached
     * by stretching pauses, not by concealment */
    {
        ph_jbuf *j9 = ph_jbuf_new();
        uint64_t now = 0;
        uint16_t s = 0;
        int stretched = 0;
        push(j9, s++, now);
        push(j9, s++, now += 20000);
        pop(j9, &b);
        for (int i = 0; i < 20; i++) {
            push(j9, s++, now += 20000);
            pop(j9, &b);
        }
        ph_jbuf_stats_get(j9, &st);
        ok(st.target_frames == 2, "steady stream: target two frames");
        for (int i = 0; i < 5; i++) /* 100 ms: the sender stalled */
            pop(j9, &b);
        for (int i = 0; i < 6; i++)
            push(j9, s++, now += 1000);
        ph_jbuf_stats_get(j9, &st);
        ok(st.target_frames >= 5, "5 frames played while no packet came: target 5 frames or more");
        ok(st.skipped == 0, "the burst after it is kept");
        for (int i = 0; i < 40; i++) {
            push(j9, s++, now += 20000);
            pop(j9, &b);
        }
        for (int i = 0; i < 4; i++) /* shallow: the pause grows it */
            if (ph_jbuf_stretch(j9))
                stretched++;
        ph_jbuf_stats_get(j9, &st);
        ok(st.target_frames == 5 && st.skipped == 0, "the target is held (the jitter estimate has calmed); nothing dropped");
        ok(stretched <= 2, "stretch one frame in two at most");
        ph_jbuf_free(j9);
    }

    /* the sound card starts late: a backlog before the first pop starts at
     * the target from the newest */
    {
        ph_jbuf *ja = ph_jbuf_new();
        for (uint16_t s = 0; s < 40; s++)
            push(ja, s, (uint64_t)s * 20000);
        ok(pop(ja, &b) == PH_JB_PLAY && b == 38, "late start: plays from newest - target + 1");
        ph_jbuf_stats_get(ja, &st);
        ok(st.skipped == 38 && st.capped == 0, "the unheard backlog counted skipped");
        ph_jbuf_free(ja);
    }

    /* dry while playing: ph_jbuf_dry says so (the caller may wait) */
    {
        ph_jbuf *j8 = ph_jbuf_new();
        ok(!ph_jbuf_dry(j8), "not playing: not dry");
        push(j8, 1, 0);
        push(j8, 2, 20000);
        pop(j8, &b);
        ok(!ph_jbuf_dry(j8), "one buffered: not dry");
        pop(j8, &b);
        ok(ph_jbuf_dry(j8), "playing, nothing buffered: dry");
        ph_jbuf_free(j8);
    }

    /* sequence numbers wrap */
    {
        ph_jbuf *j4 = ph_jbuf_new();
        bool all = true;
        uint64_t now = 0;
        push(j4, 65534, now);
        push(j4, 65535, now += 20000);
        for (uint16_t s = 0; s < 20; s++) {
            push(j4, s, now += 20000);
            if (pop(j4, &b) != PH_JB_PLAY)
                all = false;
        }
        ph_jbuf_stats_get(j4, &st);
        ok(all && st.late == 0 && st.plc == 0, "plays across the 16-bit wrap");
        ph_jbuf_free(j4);
    }

    /* a sender gone: after 25 concealed frames, back to filling */
    {
        ph_jbuf *j5 = ph_jbuf_new();
        push(j5, 1, 0);
        push(j5, 2, 20000);
        pop(j5, &b);
        pop(j5, &b);
        for (int i = 0; i < 25; i++)
            pop(j5, &b);
        ok(pop(j5, &b) == PH_JB_WAIT, "silent sender: concealment stops, silence");
        ph_jbuf_free(j5);
    }
    ph_jbuf_free(jb);
    return done_testing();
}

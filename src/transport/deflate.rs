//! COMPRESS=DEFLATE (RFC 4978) on a link: raw deflate both ways, input
//! bounded, a stream the server ends reported at once.

/// Compressed input held while looking for a complete deflate block. A
/// valid stream yields output long before this; a server that sends more
/// without any is broken or hostile.
pub(super) const MAX_DEFLATE_INPUT: usize = 1 << 20;

/// COMPRESS=DEFLATE (RFC 4978): raw deflate both ways, each write flushed
/// with a sync flush so the server sees whole commands.
pub(super) struct Deflate {
    pub(super) compress: flate2::Compress,
    pub(super) decompress: flate2::Decompress,
    /// Compressed bytes read from the socket, not yet inflated.
    pub(super) input: Vec<u8>,
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) output: Vec<u8>,
    /// The last inflate filled the caller's buffer: the inflater may hold
    /// more output even with no input left.
    pub(super) maybe_more: bool,
}

impl Deflate {
    pub(super) fn new() -> Deflate {
        Deflate {
            compress: flate2::Compress::new(flate2::Compression::fast(), false),
            decompress: flate2::Decompress::new(false),
            input: vec![0; 64 * 1024],
            start: 0,
            end: 0,
            output: Vec::new(),
            maybe_more: false,
        }
    }

    /// Inflates buffered input into `buf`; returns bytes produced (0 when
    /// more input is needed).
    pub(super) fn inflate(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let before_in = self.decompress.total_in();
        let before_out = self.decompress.total_out();
        let status = self
            .decompress
            .decompress(
                &self.input[self.start..self.end],
                buf,
                flate2::FlushDecompress::Sync,
            )
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        // RFC 4978 has the stream last as long as the connection: a final
        // block means nothing after it could ever be read, so say so now
        // rather than buffering the rest until a timeout.
        if status == flate2::Status::StreamEnd {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the server ended its compressed stream",
            ));
        }
        self.start += (self.decompress.total_in() - before_in) as usize;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        let n = (self.decompress.total_out() - before_out) as usize;
        self.maybe_more = n == buf.len();
        Ok(n)
    }

    /// Deflates `data` with a sync flush into `self.output`.
    pub(super) fn deflate(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.output.clear();
        self.output.reserve(data.len() / 2 + 64);
        let mut consumed = 0;
        loop {
            if self.output.capacity() - self.output.len() < 64 {
                self.output.reserve(self.output.capacity().max(1024));
            }
            let before = self.compress.total_in();
            self.compress
                .compress_vec(
                    &data[consumed..],
                    &mut self.output,
                    flate2::FlushCompress::Sync,
                )
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            consumed += (self.compress.total_in() - before) as usize;
            // Done when all input is taken and the flush left room to spare
            // (a full buffer may hold more flushed output).
            if consumed == data.len() && self.output.capacity() - self.output.len() >= 64 {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Deflate;

    #[test]
    fn deflate_round_trips_in_pieces() {
        let mut a = Deflate::new();
        let mut b = Deflate::new();
        let text: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("line {i}\r\n").into_bytes())
            .collect();
        let mut got = Vec::new();
        for chunk in text.chunks(70_000) {
            a.deflate(chunk).expect("deflate");
            // Feed the compressed bytes in small pieces, as a socket would.
            for piece in a.output.chunks(1000) {
                b.input[b.end..b.end + piece.len()].copy_from_slice(piece);
                b.end += piece.len();
                let mut out = vec![0u8; 4096];
                loop {
                    let n = b.inflate(&mut out).expect("inflate");
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&out[..n]);
                }
            }
        }
        assert!(got == text);
    }

    #[test]
    fn a_finished_deflate_stream_is_an_error_not_a_wait() {
        // A raw deflate stream with its final block: what a server sends if
        // it ends compression, after which nothing more can be read.
        let mut z = flate2::Compress::new(flate2::Compression::default(), false);
        let mut fin = Vec::with_capacity(256);
        z.compress_vec(b"* OK done\r\n", &mut fin, flate2::FlushCompress::Finish)
            .expect("compress");
        let mut b = Deflate::new();
        b.input[..fin.len()].copy_from_slice(&fin);
        b.end = fin.len();
        let mut out = vec![0u8; 4096];
        let err = b.inflate(&mut out).expect_err("stream end");
        assert!(
            err.to_string().contains("ended its compressed stream"),
            "{err}"
        );
    }
}

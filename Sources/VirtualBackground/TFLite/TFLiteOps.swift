import Torch

// The TFLite operators as LibTorch calls, each matching TFLite's reference kernels
// (tensorflow/lite/kernels/internal/reference/*) in its padding, rounding of sizes and border rules.

/// TensorFlow's SAME padding along one axis: the output is ceil(input / stride) and the padding
/// the window needs is split with the odd pixel at the end (bottom/right), unlike PyTorch's symmetric
/// padding. Returns (before, after).
func tfSamePadding(input: Int, kernel: Int, stride: Int, dilation: Int = 1) -> (before: Int, after: Int) {
    let effective = (kernel - 1) * dilation + 1
    let output = (input + stride - 1) / stride
    let total = max((output - 1) * stride + effective - input, 0)
    return (total / 2, total - total / 2)
}

/// Maps a TFLite NHWC axis to its NCHW position.
func nchwAxis(_ axis: Int) -> Int { [0, 2, 3, 1][axis] }

extension OpContext {
    func checked(_ activation: TFLiteActivation) throws -> TFLiteActivation {
        if activation == .signBit { throw error("the SIGN_BIT fused activation is not supported") }
        return activation
    }

    /// CONV_2D (weights OHWI → OIHW) and DEPTHWISE_CONV_2D (weights [1, kH, kW, C·m] → [C·m, 1, kH, kW],
    /// groups = C: TFLite's output channel c·m + j is group c's j-th output, as in PyTorch).
    func convolution(depthwise: Bool) throws -> TFLiteGraph.Step {
        let options: TFLiteConvOptions
        switch (depthwise, op.options) {
        case (false, .conv2D(let o)), (true, .depthwiseConv2D(let o)): options = o
        default: throw error("missing or wrong builtin options \(op.options)")
        }
        let (x, inShape) = try imageInput(0)
        let filter = try constant(1).to(dtype: .float32)
        let bias = try optionalConstant(2)?.to(dtype: .float32)
        guard filter.rank == 4 else { throw error("filter must be rank 4, got \(filter.shape)") }
        let channels = inShape[3]
        var weight: Tensor
        let groups: Int
        if depthwise {
            // The filter's last axis is C·m; TFLite ignores depth_multiplier when the shapes say it all.
            guard filter.shape[0] == 1, channels > 0, filter.shape[3] % channels == 0 else {
                throw error("depthwise filter \(filter.shape) does not fit \(channels) input channels")
            }
            weight = try filter.permute(3, 0, 1, 2).contiguous()
            groups = channels
        } else {
            guard filter.shape[3] > 0, channels % filter.shape[3] == 0 else {
                throw error("filter \(filter.shape) does not fit \(channels) input channels")
            }
            weight = try filter.permute(0, 3, 1, 2).contiguous()
            groups = channels / filter.shape[3]
        }
        // Channels-last like the activations (TFLiteGraph), so LibTorch runs its NHWC kernels without
        // converting either side.
        weight = try weight.channelsLast()
        let (kh, kw) = (filter.shape[1], filter.shape[2])
        let stride = IntPair(options.strideH, options.strideW)
        let dilation = IntPair(options.dilationH, options.dilationW)
        guard options.strideH > 0, options.strideW > 0, options.dilationH > 0, options.dilationW > 0 else {
            throw error("strides \(stride) and dilations \(dilation) must be positive")
        }
        var pads = (top: 0, bottom: 0, left: 0, right: 0)
        if options.padding == .same {
            (pads.top, pads.bottom) = tfSamePadding(input: inShape[1], kernel: kh, stride: options.strideH, dilation: options.dilationH)
            (pads.left, pads.right) = tfSamePadding(input: inShape[2], kernel: kw, stride: options.strideW, dilation: options.dilationW)
        }
        let activation = try checked(options.activation)
        // Symmetric padding goes into the convolution; TF's uneven SAME padding needs an explicit pad.
        let symmetric = pads.top == pads.bottom && pads.left == pads.right
        let padding = symmetric ? IntPair(pads.top, pads.left) : IntPair(0)
        let explicitPads = symmetric ? nil : [pads.left, pads.right, pads.top, pads.bottom]
        return step([x]) { args in
            var input = args[0]
            if let explicitPads { input = try F.pad(input, explicitPads) }
            let y = try F.conv2d(input, weight: weight, bias: bias, stride: stride, padding: padding,
                                 dilation: dilation, groups: groups)
            return try Self.fused(activation, y)
        }
    }

    /// MediaPipe's `Convolution2DTransposeBias` (see `TransposeConvBias`). Its custom options are the
    /// raw bytes of `TfLiteTransposeConvParams` {padding: i32 (0 unknown, 1 SAME, 2 VALID), stride_w: i32,
    /// stride_h: i32}.
    func transposeConvBias() throws -> TFLiteGraph.Step {
        let (x, inShape) = try imageInput(0)
        let raw = op.customOptions
        guard raw.count >= 12 else { throw error("custom options have \(raw.count) bytes, TfLiteTransposeConvParams needs 12") }
        func int32(_ offset: Int) -> Int {
            Int(Int32(bitPattern: (0..<4).reduce(UInt32(0)) { $0 | UInt32(raw[offset + $1]) << (8 * UInt32($1)) }))
        }
        let (padding, strideW, strideH) = (int32(0), int32(4), int32(8))
        guard padding == 1 || padding == 2 else { throw error("padding code \(padding) is neither SAME (1) nor VALID (2)") }
        let conv: TransposeConvBias
        do {
            conv = try TransposeConvBias(filter: constant(1), bias: constant(2), inputHeight: inShape[1],
                                       inputWidth: inShape[2], inputChannels: inShape[3], strideH: strideH,
                                       strideW: strideW, same: padding == 1)
        } catch let e as TFLiteError {
            throw error(e.message)
        }
        guard outputShape == [inShape[0], conv.outputHeight, conv.outputWidth, conv.outputChannels] else {
            throw error("declared output \(outputShape) differs from the computed [\(inShape[0]), \(conv.outputHeight), \(conv.outputWidth), \(conv.outputChannels)]")
        }
        return step([x]) { try conv($0[0]) }
    }

    /// ADD / MUL with NumPy broadcasting and a fused activation. A constant operand is converted to
    /// the run-time layout once: padded with leading 1s to the output's rank and, for rank 4, NCHW.
    /// `inPlace` (a ← a ∘ b, for commutative ops) overwrites an operand that has the output's shape
    /// and is read by nothing later (the residual adds and the squeeze-and-excite scaling).
    func binary(_ f: @escaping (Tensor, Tensor) throws -> Tensor,
                inPlace: ((Tensor, Tensor) throws -> Void)? = nil) throws -> TFLiteGraph.Step {
        let activation: TFLiteActivation
        switch op.options {
        case .elementwise(let a): activation = try checked(a)
        case .none: activation = .none
        default: throw error("unexpected builtin options \(op.options)")
        }
        let (a, b) = (try input(0), try input(1))
        let rank = outputShape.count
        func runtimeLayout(_ t: Tensor) throws -> Tensor {
            guard rank == 4 else { return t }
            guard t.rank <= 4 else { throw error("operand of rank \(t.rank) for a rank-4 output") }
            let padded = try t.reshape(Array(repeating: 1, count: 4 - t.rank) + t.shape)
            return try padded.permute(0, 3, 1, 2).contiguous()
        }
        // Run-time operands of lower rank are in TFLite's order; rank-4 ones are NCHW already.
        let lowRank = [a, b].map { compiler.shape($0).count < 4 && rank == 4 }
        func fix(_ t: Tensor, _ k: Int) throws -> Tensor { lowRank[k] ? try runtimeLayout(t) : t }
        // Which run-time operand (0 or 1) may take the result in place.
        let reusable = [a, b].indices.first { k in
            inPlace != nil && !lowRank[k] && compiler.shape([a, b][k]) == outputShape
                && compiler.consumable([a, b][k], at: position)
        }
        switch (compiler.constants[a], compiler.constants[b]) {
        case (nil, nil):
            if let k = reusable, let inPlace {
                return step([a, b]) { args in
                    try inPlace(args[k], fix(args[1 - k], 1 - k))
                    return try Self.fused(activation, args[k])
                }
            }
            return step([a, b]) { try Self.fused(activation, f(fix($0[0], 0), fix($0[1], 1))) }
        case (nil, let c?):
            let constant = try runtimeLayout(c.to(dtype: .float32))
            if reusable == 0, let inPlace {
                return step([a]) { args in try inPlace(args[0], constant); return try Self.fused(activation, args[0]) }
            }
            return step([a]) { try Self.fused(activation, f(fix($0[0], 0), constant)) }
        case (let c?, nil):
            let constant = try runtimeLayout(c.to(dtype: .float32))
            return step([b]) { try Self.fused(activation, f(constant, fix($0[0], 1))) }
        case (let c?, let d?):
            let value = try Self.fused(activation, f(runtimeLayout(c.to(dtype: .float32)), runtimeLayout(d.to(dtype: .float32))))
            return step([]) { _ in value }
        }
    }

    /// RESIZE_BILINEAR to the declared output size. TFLite's reference kernel samples source
    /// coordinate (dst + 0.5)·in/out − 0.5 with half_pixel_centers, dst·(in − 1)/(out − 1) with
    /// align_corners, else dst·in/out; the lower neighbour is max(floor, 0), the upper min(ceil, in − 1).
    /// For the first two this is exactly PyTorch's bilinear interpolate (align_corners false/true),
    /// whose clamping of negative coordinates to 0 gives the same weights at the border. The legacy
    /// third mode has no PyTorch equivalent and is computed separably from precomputed indices.
    func resizeBilinear() throws -> TFLiteGraph.Step {
        guard case .resizeBilinear(let options) = op.options else { throw error("missing ResizeBilinearOptions") }
        guard !(options.alignCorners && options.halfPixelCenters) else {
            throw error("align_corners and half_pixel_centers cannot both be set")
        }
        let (x, inShape) = try imageInput(0)
        guard outputShape.count == 4 else { throw error("output must be rank 4, got \(outputShape)") }
        let size = IntPair(outputShape[1], outputShape[2])
        if options.halfPixelCenters || options.alignCorners {
            let align = options.alignCorners
            return step([x]) { try F.interpolate($0[0], size: size, mode: .bilinear, alignCorners: align) }
        }
        let resize = try BilinearResize(from: (inShape[1], inShape[2]), to: (size.height, size.width))
        return step([x]) { try resize($0[0]) }
    }

    /// AVERAGE_POOL_2D / MAX_POOL_2D. TFLite's average ignores padded pixels (counts only those
    /// inside the image); SAME padding is TF's uneven split.
    func pool(max isMax: Bool) throws -> TFLiteGraph.Step {
        guard case .pool2D(let o) = op.options else { throw error("missing Pool2DOptions") }
        let (x, inShape) = try imageInput(0)
        let activation = try checked(o.activation)
        guard o.filterH > 0, o.filterW > 0, o.strideH > 0, o.strideW > 0 else {
            throw error("filter (\(o.filterH), \(o.filterW)) and strides (\(o.strideH), \(o.strideW)) must be positive")
        }
        let kernel = IntPair(o.filterH, o.filterW), stride = IntPair(o.strideH, o.strideW)
        // The squeeze-and-excite blocks pool the whole image: a mean is faster than a pooling kernel.
        if !isMax, o.padding == .valid, o.filterH == inShape[1], o.filterW == inShape[2] {
            return step([x]) { try Self.fused(activation, $0[0].mean(dims: [2, 3], keepDim: true)) }
        }
        var pads = [0, 0, 0, 0]
        if o.padding == .same {
            let rows = tfSamePadding(input: inShape[1], kernel: o.filterH, stride: o.strideH)
            let columns = tfSamePadding(input: inShape[2], kernel: o.filterW, stride: o.strideW)
            pads = [columns.before, columns.after, rows.before, rows.after]
        }
        if pads == [0, 0, 0, 0] {
            return step([x]) { args in
                let y = isMax ? try F.maxPool2d(args[0], kernel: kernel, stride: stride)
                              : try F.avgPool2d(args[0], kernel: kernel, stride: stride)
                return try Self.fused(activation, y)
            }
        }
        if isMax {
            return step([x]) { try Self.fused(activation, F.maxPool2d(F.pad($0[0], pads, value: -.infinity), kernel: kernel, stride: stride)) }
        }
        // Window sums over zero padding, divided by the number of real pixels in each window.
        let ones = try Tensor.ones([1, 1, inShape[1], inShape[2]])
        let counts = try F.avgPool2d(F.pad(ones, pads), kernel: kernel, stride: stride)
        let correction = try counts.reciprocal()
        return step([x]) { try Self.fused(activation, F.avgPool2d(F.pad($0[0], pads), kernel: kernel, stride: stride) * correction) }
    }

    /// MEAN over the constant axes of input 1 (negative axes count from the end).
    func mean() throws -> TFLiteGraph.Step {
        guard case .reducer(let keepDims) = op.options else { throw error("missing ReducerOptions") }
        let x = try input(0)
        let rank = compiler.shape(x).count
        let axes = try constant(1).toArray(Int32.self).map { Int($0) < 0 ? Int($0) + rank : Int($0) }
        guard axes.allSatisfy({ (0..<rank).contains($0) }) else { throw error("axes \(axes) out of range for rank \(rank)") }
        guard rank == 4 else { return step([x]) { try $0[0].mean(dims: axes, keepDim: keepDims) } }
        if keepDims {
            let dims = axes.map(nchwAxis)
            return step([x]) { try $0[0].mean(dims: dims, keepDim: true) }
        }
        // The result leaves rank 4, so it is computed in TFLite's order (and stays in it), unless it is
        // rank 4 again; a reduction without keep_dims never is.
        return step([x]) { try $0[0].permute(0, 2, 3, 1).mean(dims: axes, keepDim: false) }
    }

    /// RESHAPE to the declared output shape, through TFLite's NHWC order when rank 4 is involved. A
    /// leading batch dimension that the input shares follows the run-time batch size.
    func reshape() throws -> TFLiteGraph.Step {
        let x = try input(0)
        let inShape = compiler.shape(x)
        var target = outputShape
        let counts = (compiler.graph.tensors[x].elementCount, compiler.graph.tensors[output].elementCount)
        guard let inCount = counts.0, inCount == counts.1 else { throw error("cannot reshape \(inShape) to \(target)") }
        if let first = target.first, first == inShape.first { target[0] = -1 }
        let toNHWC = inShape.count == 4, toNCHW = target.count == 4
        return step([x]) { args in
            let y = try (toNHWC ? args[0].permute(0, 2, 3, 1) : args[0]).reshape(target)
            return toNCHW ? try y.permute(0, 3, 1, 2).contiguous() : y
        }
    }
}

/// MediaPipe's transposed convolution with bias (mediapipe/util/tflite/operations/transpose_conv_bias.cc):
/// every output pixel starts from the bias and input pixel (y, x) adds input·weight to output pixel
/// (y·stride − pad + ky, x·stride − pad + kx). With SAME the output is stride·(in − 1) + k − padTotal,
/// padTotal = max(0, k − (in − 1) mod stride − 1), and pad = padTotal / 2; VALID has no padding.
/// Computed as PyTorch's full transposed convolution (weights [I, O, kH, kW]) cropped to that window.
struct TransposeConvBias {
    let weight: Tensor, bias: Tensor
    let stride: IntPair
    let top: Int, left: Int
    let outputHeight: Int, outputWidth: Int, outputChannels: Int
    private let crops: Bool
    /// When the kernel equals the stride (the selfie models' 2×2, stride 2) no two input pixels
    /// touch the same output pixel: a 1×1 convolution to O·kH·kW channels, then each pixel's kH × kW
    /// values moved into place (depth to space), is the same sum and runs at twice the speed of
    /// LibTorch's transposed convolution. `[O·kH·kW, I, 1, 1]`, channel (o, i, j) = o·kH·kW + i·kW + j.
    private let depthToSpace: (weight: Tensor, kernel: IntPair)?

    /// - Parameter filter: TFLite's OHWI `[O, kH, kW, I]`; `bias` `[O]`.
    init(filter: Tensor, bias: Tensor, inputHeight: Int, inputWidth: Int, inputChannels: Int,
         strideH: Int, strideW: Int, same: Bool) throws {
        guard filter.rank == 4, filter.shape[3] == inputChannels, bias.shape == [filter.shape[0]] else {
            throw TFLiteError("weights \(filter.shape) and bias \(bias.shape) do not fit \(inputChannels) input channels")
        }
        guard strideH > 0, strideW > 0, inputHeight > 0, inputWidth > 0 else {
            throw TFLiteError("strides (\(strideH), \(strideW)) and input size (\(inputHeight), \(inputWidth)) must be positive")
        }
        let (kh, kw) = (filter.shape[1], filter.shape[2])
        func window(_ size: Int, _ k: Int, _ s: Int) -> (start: Int, length: Int, full: Int) {
            let total = same ? max(0, k - (size - 1) % s - 1) : 0
            return (total / 2, s * (size - 1) + k - total, s * (size - 1) + k)
        }
        let rows = window(inputHeight, kh, strideH), columns = window(inputWidth, kw, strideW)
        let filter = try filter.to(dtype: .float32)
        weight = try filter.permute(3, 0, 1, 2).contiguous()
        self.bias = try bias.to(dtype: .float32)
        stride = IntPair(strideH, strideW)
        (top, left) = (rows.start, columns.start)
        (outputHeight, outputWidth, outputChannels) = (rows.length, columns.length, filter.shape[0])
        crops = rows.length != rows.full || columns.length != columns.full
        depthToSpace = kh == strideH && kw == strideW
            ? (try filter.reshape([filter.shape[0] * kh * kw, inputChannels, 1, 1]).channelsLast(), IntPair(kh, kw)) : nil
    }

    /// `[B, I, H, W]` → `[B, O, outputHeight, outputWidth]`.
    func callAsFunction(_ x: Tensor) throws -> Tensor {
        let full: Tensor
        if let (weight, kernel) = depthToSpace {
            let (b, h, w) = (x.shape[0], x.shape[2], x.shape[3])
            let pixels = try F.conv2d(x, weight: weight).reshape([b, outputChannels, kernel.height, kernel.width, h, w])
            full = try pixels.permute(0, 1, 4, 2, 5, 3).reshape([b, outputChannels, h * kernel.height, w * kernel.width])
                + bias.reshape([1, outputChannels, 1, 1])
        } else {
            full = try F.convTranspose2d(x, weight: weight, bias: bias, stride: stride)
        }
        guard crops else { return full }
        return try full.narrow(dim: 2, start: top, length: outputHeight)
            .narrow(dim: 3, start: left, length: outputWidth).contiguous()
    }
}

import Torch

/// How the views of one panorama draw their initial latents (docs/models.md#initial-noise).
///
/// A view's latent noise carries a per-channel spatial mean of standard deviation 1/√(h·w). At the
/// first DDIM step that mean is most of what the model sees of the view's overall tone, and a
/// deterministic sampler carries it through to the image: on the miniature's 16² latents
/// (1/16, four times SD's 1/64 at 64²) it sets each view's colour and brightness, so independent
/// draws give neighbouring views different tones that CAA only partly reconciles.
public enum InitialNoise: String, Sendable, CaseIterable, Codable {
    /// Every view its own standard normal draw: MVDiffusion's sampling, the paper's protocol.
    case independent
    /// Every view its own draw with each channel's spatial mean replaced by view 0's. A Gaussian
    /// field's mean is independent of its deviations from the mean, so every view is still exactly
    /// N(0, I) (what the UNet was trained on); only the views' means are one draw, as for one scene.
    case sharedMean = "shared-mean"

    /// `[views, channels, size, size]` standard-normal latents (before the scheduler's initial sigma).
    /// Both kinds consume the same random numbers: view 0 and every view's deviations from its own
    /// mean are the same under either.
    public func draw(views: Int, channels: Int, size: Int, generator: Generator) throws -> Tensor {
        let noise = try Tensor.randn([views, channels, size, size], dtype: .float32, generator: generator)
        switch self {
        case .independent:
            return noise
        case .sharedMean:
            let means = try noise.mean(dims: [2, 3], keepDim: true)
            return try noise - means + means.slice(dim: 0, start: 0, end: 1)
        }
    }
}

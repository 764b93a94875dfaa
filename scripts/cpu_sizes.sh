# Sourced by the measurement scripts: the CPU sizes the Fashion-MNIST measurements used, as the
# overrides that give one defense that size (printed; empty for a defense at its config's).
cpu_size() {
  case $1 in
    vqunet) echo "defense.width=16 defense.lr=0.001" ;;
    cyclegan*) echo "defense.width=16 defense.disc_width=16" ;;
    sfl_vae | defense_vae) echo "defense.latent_dim=128" ;;
    defense_gan) echo "defense.width=32 defense.critic_width=32 defense.restarts=2 defense.steps=50" ;;
  esac
}
